"""The yardstick: a plain U-Net trained on the bundled model's data, crops, loss and budget.

    python benchmarks/unet_yardstick.py DATA [DATA ...] [--minutes 40] [--steps 2300] [--device auto]
                                        [--threads 2] [--json OUT.json] [--save OUT.safetensors]
    python benchmarks/unet_yardstick.py DATA [DATA ...] --load OUT.safetensors   (score saved weights)

Only the network and the schedule's shape differ from `octanet train`: the same training images
(percentile normalisation, the same layouts and split matching), the same random 256 px crops and
augmentation presets, the same Dice + BCE on the full label, Adam with cosine decay over the steps
or the time budget (whichever runs out first), and the val splits scored with the paper protocol
(Otsu, no tolerance) by ``core.metrics``. No checkpoint selection: the last weights are scored.

The U-Net is the classic one (two 3 x 3 conv + batch norm + ReLU per level, four poolings,
transposed-conv up-sampling, skip concatenation) at base width 16: 1.94 M parameters.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

from napari_octanet.core.allocator import tune_allocator
from napari_octanet.core.devices import resolve_device
from napari_octanet.core.metrics import evaluate_image
from napari_octanet.core.network import count_parameters
from napari_octanet.core.preprocess import pad_to_multiple
from napari_octanet.core.training.data import TrainingImage, epoch_order, make_batch, training_images_from_dataset
from napari_octanet.core.training.losses import dice_bce_loss
from napari_octanet.core.training.settings import AUGMENTS


def double_conv(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, base: int = 16, depth: int = 4) -> None:
        super().__init__()
        widths = [base * 2**level for level in range(depth + 1)]
        self.encoders = nn.ModuleList(
            double_conv(c_in, c_out) for c_in, c_out in zip([1, *widths[:-1]], widths, strict=True)
        )
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, 2, stride=2) for w in widths[:-1])
        self.decoders = nn.ModuleList(double_conv(w * 2, w) for w in widths[:-1])
        self.head = nn.Conv2d(base, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1], H and W multiples of 2**depth -> vessel probability."""
        skips = []
        x = image
        for level, encoder in enumerate(self.encoders):
            x = encoder(x if level == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for up, decoder, skip in zip(reversed(self.ups), reversed(self.decoders), reversed(skips[:-1]), strict=True):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return torch.sigmoid(self.head(x))


def load_split(roots: list[str], split: str) -> list[TrainingImage]:
    return [image for root in roots for image in training_images_from_dataset(root, "auto", split)]


def train(
    network: UNet,
    images: list[TrainingImage],
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, float]:
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    autocast = torch.autocast("cuda", dtype=torch.float16) if cuda else contextlib.nullcontext()
    generator = torch.Generator().manual_seed(args.seed)
    order = epoch_order(images, args.steps * args.batch_size, args.balance_groups, args.seed)
    budget = 60.0 * args.minutes if args.minutes else math.inf
    network.train()
    started, losses = time.perf_counter(), []
    for step in range(args.steps):
        progress = max(step / args.steps, (time.perf_counter() - started) / budget)
        if progress >= 1:
            break
        for group in optimizer.param_groups:
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * progress))
        indices = order[step * args.batch_size : (step + 1) * args.batch_size]
        batch = make_batch(images, indices, args.crop_size, AUGMENTS[args.augment], generator).to(device)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            probability = network(batch[:, :1])
        loss = dice_bce_loss(probability, batch[:, 3:4])
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(float(loss.detach()))
        if step % 100 == 0:
            print(f"step {step}: loss {statistics.mean(losses[-100:]):.4f}", file=sys.stderr, flush=True)
    return {"steps": len(losses), "train_minutes": round((time.perf_counter() - started) / 60, 1)}


@torch.no_grad()
def probability_map(network: UNet, image: np.ndarray, device: torch.device) -> np.ndarray:
    padded, (height, width) = pad_to_multiple(image[None])
    batch = torch.from_numpy(padded[:, None]).to(device)
    return network(batch)[0, 0, :height, :width].float().cpu().numpy()


def score(network: UNet, val: list[TrainingImage], device: torch.device) -> dict[str, dict[str, float]]:
    """Mean Dice and AUC per validation group (paper protocol)."""
    network.eval()
    by_group: dict[str, list[dict[str, float]]] = {}
    for image in val:
        by_group.setdefault(image.group, []).append(
            evaluate_image(probability_map(network, image.image, device), image.label)
        )
    return {
        group: {key: round(float(np.nanmean([m[key] for m in rows])), 4) for key in ("dice", "auc")}
        for group, rows in by_group.items()
    }


def cpu_ms_per_scan(network: UNet, size: int = 304, repeats: int = 5) -> float:
    """Median ms of one warm forward pass on the CPU (the threads set by --threads)."""
    network = network.cpu().eval()
    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    probability_map(network, image, torch.device("cpu"))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        probability_map(network, image, torch.device("cpu"))
        times.append(1000 * (time.perf_counter() - start))
    return round(statistics.median(times), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+", help="dataset folder(s), as for octanet train")
    parser.add_argument("--split", default="train")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--steps", type=int, default=2300)
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget (the decay follows it)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--augment", default="flips", choices=tuple(AUGMENTS))
    parser.add_argument("--balance-groups", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the result here")
    parser.add_argument("--save", default=None, help="write the trained weights (safetensors) here")
    parser.add_argument("--load", default=None, help="score these saved weights instead of training")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()  # as octanet train does
    torch.manual_seed(args.seed)
    device = resolve_device(args.device).device
    network = UNet().to(device, memory_format=torch.channels_last)  # as octanet train lays its weights out
    result: dict[str, object] = {"network": "U-Net (base 16)", "parameters": count_parameters(network)}
    if args.load:
        from safetensors.torch import load_file

        network.load_state_dict(load_file(args.load, device=str(device)))
        result["loaded"] = args.load
    else:
        result.update(train(network, load_split(args.data, args.split), args, device))
    val_images = load_split(args.data, args.val_split)
    result["val"] = score(network, val_images, device)
    result["cpu_ms_per_304px_scan"] = cpu_ms_per_scan(network)
    result["settings"] = {k: v for k, v in vars(args).items() if k not in ("json", "save")}
    if args.save:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, args.save)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
