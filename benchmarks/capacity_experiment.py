"""Does `lite` lack capacity? Train wider variants under the loss comparison's exact recipe.

    python benchmarks/capacity_experiment.py DATA_ROOT --variant thin_head [--epochs 6] [--threads 1]

Same data (OCTA500_3M/train, 10 % held out), loss (Dice + BCE), schedule, crops and number of
steps as the Dice + BCE run of ``loss_comparison.sh``; only the network differs. Prints the
OCTA500_3M/val scores (paper protocol), the parameter count and the training time.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from napari_octanet.core.checkpoint import load_model
from napari_octanet.core.evaluation import iter_evaluate
from napari_octanet.core.layouts import index_dataset
from napari_octanet.core.network import LITE, OctaNet, count_parameters
from napari_octanet.core.progress import run_to_end
from napari_octanet.core.training.data import split_train_val, training_images_from_dataset
from napari_octanet.core.training.trainer import TrainSettings, train

VARIANTS = {
    "lite": LITE,
    # the first bundled model's network: an 8-channel full-resolution path (stem, decoder head, SRS)
    "thin_head": replace(LITE, name="lite-thin-head", stem_width=8, head_width=8, fine_width=8),
    # encoder and decoder twice as wide, thin full-resolution path
    "wide_body": replace(
        LITE, name="lite-wide-body", planes=(32, 64, 128, 256), stem_width=8, head_width=8, fine_width=8
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="lite")
    parser.add_argument("--epochs", type=int, default=6, help="stage-1 epochs of 32 steps; stage 2 gets a third")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = args.data / "OCTA500_3M"
    images = training_images_from_dataset(str(data), "pairs", "train")
    train_set, val_set = split_train_val(images, 0.1, seed=0)
    out = Path("runs/capacity") / f"{args.variant}.safetensors"
    settings = TrainSettings(
        out=str(out),
        config=VARIANTS[args.variant],
        init="scratch",
        epochs=args.epochs,
        fine_epochs=args.epochs // 3,
        batch_size=8,
        lr=2e-3,
        samples_per_epoch=256,
        crop_size=256,
        seed=0,
        device="cpu",
    )
    started = time.perf_counter()
    result = train(train_set, val_set, settings)
    minutes = (time.perf_counter() - started) / 60
    model = load_model(result.best_path)
    summary = run_to_end(iter_evaluate(model, index_dataset(str(data), "pairs", "val"), device="cpu")).summary
    print(
        json.dumps(
            {
                "variant": args.variant,
                "parameters": count_parameters(OctaNet(VARIANTS[args.variant])),
                "train_minutes": round(minutes, 1),
                "val_dice": summary["dice"],
                "val_dice_std": summary["dice_std"],
                "val_auc": summary["auc"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
