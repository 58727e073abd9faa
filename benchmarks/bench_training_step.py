"""Training speed: milliseconds per step, contiguous (NCHW) against channels-last weights, in float32
and in the CPU's fast reduced precision (bfloat16 on CPUs with AMX; none elsewhere).

    python benchmarks/bench_training_step.py [--batch-size 8] [--crop-size 256] [--steps 8] [--threads 2]

Times one optimizer step (forward, Dice + BCE, backward, Adam) on random crops made by the
trainer's own ``make_batch`` from synthetic scans: `lite`'s SCS step (stage 1), its SRS step
(stage 2, SCS frozen) and the U-Net yardstick's step, each with the weights in both memory
layouts, and channels-last under the trainer's autocast (the forward pass reduced, the loss in
float32). Then it runs ``iter_train`` itself for the same number of SCS steps in both precisions.
Medians after two warm-up steps, in one process with the allocator tuned as ``octanet train``
tunes it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from napari_octanet.core.allocator import tune_allocator
from napari_octanet.core.devices import full_precision, precision_name, reduced_precision
from napari_octanet.core.network import OctaNet, get_config
from napari_octanet.core.synthetic import synthetic_set
from napari_octanet.core.training.data import TrainingImage, epoch_order, make_batch, training_image
from napari_octanet.core.training.losses import dice_bce_loss
from napari_octanet.core.training.settings import AUGMENTS, TrainSettings
from napari_octanet.core.training.trainer import iter_train

sys.path.insert(0, str(Path(__file__).parent))
from unet_yardstick import UNet  # noqa: E402

WARM_UP = 2
CPU = torch.device("cpu")
Step = Callable[[torch.Tensor], None]


def optimizer_step(
    optimizer: torch.optim.Optimizer, loss_of: Callable[[torch.Tensor], torch.Tensor], reduced: bool
) -> Step:
    """One step: ``loss_of(batch)`` (in reduced precision where asked and the CPU has one), backward, Adam."""

    def step(batch: torch.Tensor) -> None:
        with reduced_precision(CPU, reduced):
            loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def lite_coarse_loss(network: OctaNet) -> Callable[[torch.Tensor], torch.Tensor]:
    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        pixel, centerline = network.coarse(batch[:, :1])
        with full_precision(CPU):
            return dice_bce_loss(pixel, batch[:, 1:2]) + dice_bce_loss(centerline, batch[:, 2:3])

    return loss_of


def lite_fine_loss(network: OctaNet) -> Callable[[torch.Tensor], torch.Tensor]:
    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        image = batch[:, :1]
        with torch.no_grad():
            pixel, centerline = network.coarse(image)
        fine = network.fine(image, pixel, centerline)
        with full_precision(CPU):
            return dice_bce_loss(fine, batch[:, 3:4])

    return loss_of


def unet_loss(unet: UNet) -> Callable[[torch.Tensor], torch.Tensor]:
    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        probability = unet(batch[:, :1])
        with full_precision(CPU):
            return dice_bce_loss(probability, batch[:, 3:4])

    return loss_of


def build(kind: str, memory_format: torch.memory_format, reduced: bool = False) -> Step:
    if kind == "U-Net":
        unet = UNet().to(memory_format=memory_format).train()
        return optimizer_step(torch.optim.Adam(unet.parameters(), 1e-3), unet_loss(unet), reduced)
    network = OctaNet(get_config("lite")).to(memory_format=memory_format)
    coarse_stage = kind == "lite SCS"
    network.coarse.train(coarse_stage).requires_grad_(coarse_stage)
    network.fine.train(not coarse_stage).requires_grad_(not coarse_stage)
    trained = network.coarse if coarse_stage else network.fine
    optimizer = torch.optim.Adam(trained.parameters(), 1e-3)
    return optimizer_step(optimizer, (lite_coarse_loss if coarse_stage else lite_fine_loss)(network), reduced)


def median_ms(step: Step, batches: list[torch.Tensor]) -> float:
    times = []
    for batch in batches:
        start = time.perf_counter()
        step(batch)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times[WARM_UP:])


def trainer_ms(images: list[TrainingImage], args: argparse.Namespace, folder: Path, reduced: bool) -> float:
    """Median ms between the trainer's step events (batch making included) in stage 1."""
    settings = TrainSettings(
        out=str(folder / "bench.safetensors"),
        epochs=1,
        fine_epochs=0,
        batch_size=args.batch_size,
        crop_size=args.crop_size,
        samples_per_epoch=(args.steps + WARM_UP) * args.batch_size,
        augment=AUGMENTS["flips"],
        device="cpu",
        mixed_precision=reduced,
    )
    times, last = [], time.perf_counter()
    for event in iter_train(images, [], settings):
        if event.kind == "step":
            now = time.perf_counter()
            times.append(1000 * (now - last))
            last = now
    return statistics.median(times[WARM_UP:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per row, after two warm-up steps")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tune_allocator()
    torch.manual_seed(0)
    images = [training_image(image, label, group="synthetic") for image, label in synthetic_set(8, seed=1)]
    order = epoch_order(images, (args.steps + WARM_UP) * args.batch_size, False, 0)
    generator = torch.Generator().manual_seed(0)
    batches = [
        make_batch(images, order[i : i + args.batch_size], args.crop_size, AUGMENTS["flips"], generator)
        for i in range(0, len(order), args.batch_size)
    ]
    fast = precision_name(CPU)
    print(f"ms per step, batch {args.batch_size} x {args.crop_size} px, {args.threads} threads; this CPU: {fast}\n")
    print(f"| step | contiguous | channels-last | channels-last, {fast} |\n|---|---|---|---|")
    for kind in ("lite SCS", "lite SRS", "U-Net"):
        plain = median_ms(build(kind, torch.contiguous_format), batches)
        last = median_ms(build(kind, torch.channels_last), batches)
        reduced = median_ms(build(kind, torch.channels_last, reduced=True), batches)
        print(f"| {kind} | {plain:.0f} | {last:.0f} ({last / plain:.2f}) | {reduced:.0f} ({reduced / plain:.2f}) |")
    for reduced in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            ms = trainer_ms(images, args, Path(folder), reduced)
        print(f"\n`iter_train`, stage 1 (batch making included), {precision_name(CPU, reduced)}: {ms:.0f} ms per step")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
