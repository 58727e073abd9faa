"""``octanet train``: two-stage training or fine-tuning, with a progress bar; also under torchrun."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ..core.devices import DEVICE_CHOICES


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train",
        help="train or fine-tune OCTA-Net on labelled data",
        description="Stage 1 trains SCS, stage 2 SRS with SCS frozen. The best model (by validation Dice) "
        "is written to --out and the latest state to OUT-last.safetensors (for --resume). Ctrl-C keeps both.",
    )
    parser.add_argument("data", nargs="+", metavar="DATA", help="dataset folder(s); all are used together")
    parser.add_argument("--layout", default="auto", choices=("auto", "rose1", "rose2", "pairs"))
    parser.add_argument("--split", default="train", help="training split folder name (default: train)")
    validation = parser.add_mutually_exclusive_group()
    validation.add_argument("--val-fraction", type=float, default=0.1,
                            help="fraction of the training images held out for validation (default 0.1)")
    validation.add_argument("--val-split", default=None,
                            help="validate on this split of the same folders instead (e.g. val; never test)")
    parser.add_argument("--config", default="lite", choices=("lite", "paper"), help="network configuration")
    parser.add_argument("--init", default="scratch",
                        help="'scratch', 'default' (the bundled model) or a checkpoint to fine-tune")
    parser.add_argument("--resume", default=None, help="an OUT-last.safetensors file to continue from")
    parser.add_argument("--epochs", type=int, default=30, help="stage-1 (SCS) epochs")
    parser.add_argument("--fine-epochs", type=int, default=None, help="stage-2 (SRS) epochs (default epochs/5)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss", default="dice_bce", choices=("dice_bce", "mse"))
    parser.add_argument("--crop-size", type=int, default=256, help="training crop side (multiple of 32)")
    parser.add_argument("--samples-per-epoch", type=int, default=None, help="crops per epoch (default: all images)")
    parser.add_argument("--balance-groups", action="store_true", help="draw each dataset/split equally often")
    parser.add_argument("--patience", type=int, default=10, help="early stopping after this many epochs without gain")
    parser.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                        help="stop after this many minutes (10 %% of them for stage 2); the schedule adapts")
    parser.add_argument("--no-augment", action="store_true", help="no flips, turns, rotation, gamma or contrast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("octanet.safetensors"), help="best checkpoint path")
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--note", default="", help="free text stored in the checkpoint's provenance")
    parser.set_defaults(run=run)


def load_data(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    from ..core.training.data import split_train_val, training_images_from_dataset

    train = [image for root in args.data for image in training_images_from_dataset(root, args.layout, args.split)]
    if args.val_split:
        if args.val_split.lower().startswith("test"):
            raise ValueError("validating on a test split would leak it into model selection; use a val split")
        val = [image for root in args.data for image in training_images_from_dataset(root, args.layout, args.val_split)]
        return train, val
    return split_train_val(train, args.val_fraction, args.seed)


def settings_from(args: argparse.Namespace) -> Any:
    from ..core.training.augment import AugmentConfig
    from ..core.training.trainer import TrainSettings

    return TrainSettings(
        out=str(args.out), config=args.config, init=args.init, epochs=args.epochs, fine_epochs=args.fine_epochs,
        batch_size=args.batch_size, lr=args.lr, loss=args.loss, crop_size=args.crop_size,
        augment=AugmentConfig.none() if args.no_augment else AugmentConfig(),
        samples_per_epoch=args.samples_per_epoch, balance_groups=args.balance_groups, patience=args.patience,
        seed=args.seed, device=args.device, resume=args.resume, time_budget_minutes=args.time_budget,
    )


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..core.training.trainer import iter_train

    if args.threads:
        torch.set_num_threads(args.threads)
    is_main = int(os.environ.get("RANK", "0")) == 0
    train, val = load_data(args)
    groups: dict[str, int] = {}
    for image in train:
        groups[image.group] = groups.get(image.group, 0) + 1
    provenance = {"command": shlex.join(["octanet", *sys.argv[1:]]) if sys.argv else "", "data": args.data,
                  "training_images": groups, "validation_images": len(val), "note": args.note}
    bar: tqdm | None = None
    settings = settings_from(args)
    generator = iter_train(train, val, settings, provenance=provenance)
    try:
        while True:
            event = next(generator)
            if not is_main:
                continue
            if event.kind == "step":
                bar = bar or tqdm(total=event.steps, desc=f"stage {event.stage} epoch {event.epoch + 1}/{event.epochs}",
                                  file=sys.stderr, leave=False, initial=event.step)
                bar.n = event.step
                bar.set_postfix(loss=f"{event.loss:.4f}", best=f"{event.best_dice:.4f}")
                bar.refresh()
            else:
                if bar is not None:
                    bar.close()
                    bar = None
                print(event.message, file=sys.stderr, flush=True)
    except StopIteration as stop:
        result = stop.value
    except KeyboardInterrupt:
        generator.close()
        print(f"interrupted: best model kept at {args.out}, state at {settings.last_path()}",
              file=sys.stderr)
        return 130
    if is_main:
        print(f"best validation Dice {result.best_dice:.4f}; best model {result.best_path}; "
              f"resume state {result.last_path}")
    return 0
