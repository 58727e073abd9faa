"""``octanet train``: two-stage training or fine-tuning, with a progress bar; also under torchrun."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.devices import DEVICE_CHOICES
from ..core.training.settings import AUGMENTS, WHOLE_IMAGES, TrainSettings, parse_crop_size
from ._common import add_precision_option, mixed_precision_of

if TYPE_CHECKING:
    from ..core.training.trainer import TrainEvent, TrainResult


def add_parser(commands: argparse._SubParsersAction) -> None:
    from ..core.layouts import LAYOUTS
    from ..core.network.config import CONFIGS
    from ..core.training.losses import LOSSES

    parser = commands.add_parser(
        "train",
        help="train or fine-tune OCTA-Net on labelled data",
        description="Stage 1 trains SCS, stage 2 SRS with SCS frozen. The best model (by validation Dice) is "
        "written to --out (default: a new float16 model in the model library, see 'octanet models'); while it "
        "runs, the latest state goes to OUT-last.safetensors (for --resume), removed at the end unless "
        "--keep-resume-state. Ctrl-C keeps the best model and the state.",
    )
    parser.add_argument("data", nargs="+", metavar="DATA", help="dataset folder(s); all are used together")
    parser.add_argument("--layout", default="auto", choices=("auto", *LAYOUTS))
    parser.add_argument("--split", default="train", help="training split folder name (default: train)")
    validation = parser.add_mutually_exclusive_group()
    validation.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="fraction of the training images held out for validation (default 0.1)",
    )
    validation.add_argument(
        "--val-split", default=None, help="validate on this split of the same folders instead (e.g. val; never test)"
    )
    parser.add_argument("--config", default="lite", choices=tuple(CONFIGS), help="network configuration")
    parser.add_argument(
        "--init", default="scratch", help="'scratch', 'default' (the bundled model) or a checkpoint to fine-tune"
    )
    parser.add_argument("--resume", default=None, help="an OUT-last.safetensors file to continue from")
    parser.add_argument("--epochs", type=int, default=30, help="stage-1 (SCS) epochs")
    parser.add_argument("--fine-epochs", type=int, default=None, help="stage-2 (SRS) epochs (default epochs/5)")
    parser.add_argument(
        "--batch-size", type=int, default=4, help="crops per step, at least 2 (batch norm; 1 with --freeze-batch-norm)"
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--loss", default="dice_bce", choices=tuple(LOSSES))
    parser.add_argument(
        "--crop-size",
        type=_crop_size,
        default=TrainSettings.crop_size,
        help=f"training crop side (multiple of 32), or '{WHOLE_IMAGES}': whole images, batched by size",
    )
    parser.add_argument("--samples-per-epoch", type=int, default=None, help="crops per epoch (default: all images)")
    parser.add_argument("--balance-groups", action="store_true", help="draw each dataset/split equally often")
    parser.add_argument(
        "--patience",
        type=int,
        default=TrainSettings.patience,
        help="early stopping after this many epochs without gain",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="MINUTES",
        help="stop after this many minutes (10 %% of them for stage 2); the schedule adapts",
    )
    parser.add_argument(
        "--augment",
        default="full",
        choices=tuple(AUGMENTS),
        help="full: flips, turns, small rotations, gamma, contrast and noise; flips: flips and turns only",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=TrainSettings.ema_decay,
        metavar="DECAY",
        help="validate and keep an exponential moving average of the weights (e.g. 0.999)",
    )
    parser.add_argument(
        "--skeleton-recall",
        type=float,
        default=TrainSettings.skeleton_recall,
        metavar="WEIGHT",
        help="add a skeleton recall term of this weight to the loss (thin vessels; 0: none)",
    )
    parser.add_argument(
        "--freeze-batch-norm",
        action="store_true",
        help="fine-tuning: keep the starting model's batch-norm statistics (suits whole images and small batches)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=None, help="best checkpoint path (default: the model library, under --name)"
    )
    parser.add_argument("--name", default=None, help="model name in the library (default: octanet-CONFIG-DATE)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--keep-resume-state", action="store_true", help="keep OUT-last.safetensors after a completed run"
    )
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    add_precision_option(parser)
    parser.add_argument("--note", default="", help="free text stored in the checkpoint's provenance")
    parser.set_defaults(run=run)


def _crop_size(text: str) -> int | None:
    try:
        return parse_crop_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def load_data(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """Training and validation images; files left out (no partner, unreadable) are listed on stderr."""
    from ..core.training.data import split_train_val

    train = _images_of_split(args, args.split)
    if args.val_split:
        if args.val_split.lower().startswith("test"):
            raise ValueError("validating on a test split would leak it into model selection; use a val split")
        return train, _images_of_split(args, args.val_split)
    return split_train_val(train, args.val_fraction, args.seed)


def _images_of_split(args: argparse.Namespace, split: str) -> list[Any]:
    from ..core.layouts import index_dataset
    from ..core.training.data import training_images_from_index

    images = []
    for root in args.data:
        index = index_dataset(root, args.layout, split)
        if index.unpaired or index.unreadable:
            print(index.report(), file=sys.stderr)
        images += training_images_from_index(index)
    return images


def output_path(args: argparse.Namespace) -> Path:
    """--out, or a new file in the model library named after --name (never an existing one)."""
    if args.out is not None:
        return args.out
    from ..core.library import SUFFIX, models_dir, unique_name

    wanted = args.name or f"octanet-{args.config}-{time.strftime('%Y%m%d-%H%M%S')}"
    return models_dir() / f"{unique_name(wanted)}{SUFFIX}"


def settings_from(args: argparse.Namespace) -> TrainSettings:
    return TrainSettings(
        out=str(output_path(args)),
        config=args.config,
        init=args.init,
        epochs=args.epochs,
        fine_epochs=args.fine_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        loss=args.loss,
        crop_size=args.crop_size,
        augment=AUGMENTS[args.augment],
        ema_decay=args.ema,
        skeleton_recall=args.skeleton_recall,
        freeze_batch_norm=args.freeze_batch_norm,
        samples_per_epoch=args.samples_per_epoch,
        balance_groups=args.balance_groups,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        mixed_precision=mixed_precision_of(args),
        resume=args.resume,
        time_budget_minutes=args.time_budget,
        overwrite=args.overwrite,
        keep_resume_state=args.keep_resume_state,
        half=args.out is None,
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ..core.training.trainer import check_settings, iter_train

    if args.threads:
        torch.set_num_threads(args.threads)
    is_main = int(os.environ.get("RANK", "0")) == 0
    settings = settings_from(args)
    check_settings(settings)
    train, val = load_data(args)
    groups: dict[str, int] = {}
    for image in train:
        groups[image.group] = groups.get(image.group, 0) + 1
    provenance = {
        "command": shlex.join(["octanet", *sys.argv[1:]]) if sys.argv else "",
        "data": args.data,
        "training_images": groups,
        "validation_images": len(val),
        "note": args.note,
    }
    bar = _ProgressBar(enabled=is_main)
    generator = iter_train(train, val, settings, provenance=provenance)
    try:
        result = bar.follow(generator)
    except KeyboardInterrupt:
        bar.close()
        generator.close()
        result = None
    if result is None or result.stopped == "cancelled":
        if is_main:
            print(f"octanet train: interrupted; {_what_was_kept(settings)}", file=sys.stderr)
        return 130
    if not is_main:
        return 0
    if result.best_path is None:
        print(f"octanet train: {result.stopped}; no epoch finished, so no model was written", file=sys.stderr)
        return 1
    score = "no validation images" if result.best_dice is None else f"best validation Dice {result.best_dice:.4f}"
    state = f"; resume state {result.last_path}" if result.last_path is not None else ""
    print(f"training {result.stopped}: {score}; model {result.best_path}{state}")
    return 0


def _what_was_kept(settings: TrainSettings) -> str:
    best, last = Path(settings.out), settings.last_path()
    if not best.is_file():
        return "no epoch had finished, so nothing was kept"
    resume = f"; resume with --resume {last}" if last.is_file() else ""
    return f"the best model so far is kept at {best}{resume}"


class _ProgressBar:
    """A tqdm bar per stage on stderr (steps, loss, ETA) and one line per epoch."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def follow(self, generator: Generator[TrainEvent, None, TrainResult]) -> TrainResult:
        while True:
            try:
                event = next(generator)
            except StopIteration as stop:
                self.close()
                return stop.value
            if self.enabled:
                self.show(event)

    def show(self, event: TrainEvent) -> None:
        from tqdm import tqdm

        if event.kind in ("step", "epoch") and event.total:
            if self.bar is None or self.bar.total != event.total or self.bar.desc != f"stage {event.stage}":
                self.close()
                self.bar = tqdm(
                    total=event.total,
                    desc=f"stage {event.stage}",
                    unit="step",
                    file=sys.stderr,
                    initial=event.done - (event.kind == "step"),
                    dynamic_ncols=True,
                )
            self.bar.update(event.done - self.bar.n)
            self.bar.set_postfix(
                epoch=f"{event.epoch + (event.kind == 'step')}/{event.epochs}", loss=f"{event.loss:.4f}", refresh=False
            )
        if event.kind != "step" and event.message:
            tqdm.write(event.message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
