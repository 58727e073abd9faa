"""``octanet train``: two-stage training or fine-tuning, with a progress bar; also under torchrun."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from argparse import SUPPRESS
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.devices import DEVICE_CHOICES
from ..core.training.settings import AUGMENTS, MIN_BATCH_SIZE, WHOLE_IMAGES, TrainSettings, parse_crop_size
from ._common import add_precision_option, add_threads_option, apply_threads, mixed_precision_of

if TYPE_CHECKING:
    from ..core.training.trainer import TrainEvent, TrainResult

#: A run's settings where neither an option nor a resumed run says otherwise.
DEFAULTS = TrainSettings()


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
        "--keep-resume-state. Ctrl-C, or SIGTERM (kill, a batch scheduler's time limit), keeps the best model and "
        "the state. A resumed run keeps the settings it was "
        "started with; options given with --resume change them, and the run says which.",
    )
    recipe = parser.add_argument_group(
        "recipe", "what the run learns; with --resume, only the options given here change the resumed run's"
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
    recipe.add_argument(
        "--config", default=SUPPRESS, choices=tuple(CONFIGS), help=f"network configuration (default {DEFAULTS.config})"
    )
    parser.add_argument(
        "--init", default="scratch", help="'scratch', 'default' (the bundled model) or a checkpoint to fine-tune"
    )
    parser.add_argument("--resume", default=None, help="an OUT-last.safetensors file to continue from")
    recipe.add_argument(
        "--epochs", type=int, default=SUPPRESS, help=f"stage-1 (SCS) epochs (default {DEFAULTS.epochs})"
    )
    recipe.add_argument("--fine-epochs", type=int, default=SUPPRESS, help="stage-2 (SRS) epochs (default epochs/5)")
    recipe.add_argument(
        "--batch-size",
        type=int,
        default=SUPPRESS,
        help=f"crops per step (default {DEFAULTS.batch_size}), at least {MIN_BATCH_SIZE} (batch norm; 1 with "
        "--freeze-batch-norm)",
    )
    recipe.add_argument("--lr", type=float, default=SUPPRESS, help=f"learning rate (default {DEFAULTS.lr})")
    recipe.add_argument("--loss", default=SUPPRESS, choices=tuple(LOSSES), help=f"(default {DEFAULTS.loss})")
    recipe.add_argument(
        "--crop-size",
        type=_crop_size,
        default=SUPPRESS,
        help=f"training crop side, a multiple of 32 (default {DEFAULTS.crop_size}), or '{WHOLE_IMAGES}': whole "
        "images, batched by size",
    )
    recipe.add_argument("--samples-per-epoch", type=int, default=SUPPRESS, help="crops per epoch (default: all images)")
    recipe.add_argument(
        "--balance-groups", action="store_true", default=SUPPRESS, help="draw each dataset/split equally often"
    )
    recipe.add_argument(
        "--patience",
        type=int,
        default=SUPPRESS,
        help=f"early stopping after this many epochs without gain (default {DEFAULTS.patience})",
    )
    recipe.add_argument(
        "--time-budget",
        dest="time_budget_minutes",
        type=float,
        default=SUPPRESS,
        metavar="MINUTES",
        help="stop after this many minutes (10 %% of them for stage 2); the schedule adapts",
    )
    recipe.add_argument(
        "--augment",
        default=SUPPRESS,
        choices=tuple(AUGMENTS),
        help="full (default): flips, turns, small rotations, gamma, contrast and noise; flips: flips and turns only; "
        "upright: full without flips and turns",
    )
    recipe.add_argument(
        "--ema",
        dest="ema_decay",
        type=float,
        default=SUPPRESS,
        metavar="DECAY",
        help="validate and keep an exponential moving average of the weights (e.g. 0.999; default none)",
    )
    recipe.add_argument(
        "--skeleton-recall",
        type=float,
        default=SUPPRESS,
        metavar="WEIGHT",
        help="add a skeleton recall term of this weight to the loss (thin vessels; default "
        f"{DEFAULTS.skeleton_recall})",
    )
    recipe.add_argument(
        "--freeze-batch-norm",
        action="store_true",
        default=SUPPRESS,
        help="fine-tuning: keep the starting model's batch-norm statistics (suits whole images and small batches)",
    )
    recipe.add_argument("--seed", type=int, default=SUPPRESS, help=f"(default {DEFAULTS.seed})")
    parser.add_argument(
        "--out", type=Path, default=None, help="best checkpoint path (default: the model library, under --name)"
    )
    parser.add_argument("--name", default=None, help="model name in the library (default: octanet-CONFIG-DATE)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--keep-resume-state", action="store_true", help="keep OUT-last.safetensors after a completed run"
    )
    parser.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    add_threads_option(parser)
    add_precision_option(parser)
    parser.add_argument("--note", default="", help="free text stored in the checkpoint's provenance")
    parser.set_defaults(run=run)


def _crop_size(text: str) -> int | None:
    try:
        return parse_crop_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def load_data(args: argparse.Namespace, seed: int) -> tuple[list[Any], list[Any]]:
    """Training and validation images; files left out (no partner, unreadable) are listed on stderr."""
    from ..core.training.data import split_train_val

    train = _images_of_split(args, args.split)
    if args.val_split:
        if args.val_split.lower().startswith("test"):
            raise ValueError("validating on a test split would leak it into model selection; use a val split")
        return train, _images_of_split(args, args.val_split)
    return split_train_val(train, args.val_fraction, seed)


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


def output_path(args: argparse.Namespace, settings: TrainSettings) -> Path:
    """--out, or a new file in the model library named after --name (never an existing one)."""
    if args.out is not None:
        return args.out
    from ..core.library import SUFFIX, models_dir, unique_name

    config = settings.config if isinstance(settings.config, str) else "custom"
    wanted = args.name or f"octanet-{config}-{time.strftime('%Y%m%d-%H%M%S')}"
    return models_dir() / f"{unique_name(wanted)}{SUFFIX}"


#: The recipe options, by their TrainSettings field (each option's argparse dest). They have no
#: argparse default, so that a resumed run can tell the options given from those left to the run it resumes.
RECIPE_FIELDS = (
    "config",
    "epochs",
    "fine_epochs",
    "batch_size",
    "lr",
    "loss",
    "crop_size",
    "samples_per_epoch",
    "balance_groups",
    "patience",
    "time_budget_minutes",
    "augment",
    "ema_decay",
    "skeleton_recall",
    "freeze_batch_norm",
    "seed",
)


def settings_from(args: argparse.Namespace) -> TrainSettings:
    """The run's settings: the options given, over the resumed run's settings (--resume) or the defaults."""
    given = {field: getattr(args, field) for field in RECIPE_FIELDS if hasattr(args, field)}
    if "augment" in given:
        given["augment"] = AUGMENTS[given["augment"]]
    base = _resumed_run(args.resume) if args.resume else DEFAULTS
    settings = replace(base, **given)
    return replace(
        settings,
        out=str(output_path(args, settings)),
        init=args.init,
        device=args.device,
        mixed_precision=mixed_precision_of(args),
        resume=args.resume,
        overwrite=args.overwrite,
        keep_resume_state=args.keep_resume_state,
        half=args.out is None,
    )


def _resumed_run(resume_state: str) -> TrainSettings:
    from ..core.training.trainer import resumed_settings

    return resumed_settings(resume_state) or DEFAULTS


def run(args: argparse.Namespace) -> int:
    from ..core.training.trainer import check_settings, iter_train

    apply_threads(args)
    is_main = int(os.environ.get("RANK", "0")) == 0
    settings = settings_from(args)
    check_settings(settings)
    train, val = load_data(args, settings.seed)
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
    stopped_by: list[signal.Signals] = []
    try:
        with _stopping_on(signal.SIGTERM, stopped_by):
            result = bar.follow(generator)
    except KeyboardInterrupt:
        bar.close()
        generator.close()
        result = None
    if result is None or result.stopped == "cancelled":
        how = f"stopped by {stopped_by[0].name}" if stopped_by else "interrupted"
        if is_main:
            print(f"octanet train: {how}; {_what_was_kept(settings)}", file=sys.stderr)
        return 128 + (stopped_by[0] if stopped_by else signal.SIGINT)
    if not is_main:
        return 0
    if result.best_path is None:
        print(f"octanet train: {result.stopped}; no epoch finished, so no model was written", file=sys.stderr)
        return 1
    score = "no validation images" if result.best_dice is None else f"best validation Dice {result.best_dice:.4f}"
    state = f"; resume state {result.last_path}" if result.last_path is not None else ""
    print(f"training {result.stopped}: {score}; model {result.best_path}{state}")
    return 0


@contextmanager
def _stopping_on(signum: signal.Signals, received: list[signal.Signals]) -> Iterator[None]:
    """Treat ``signum`` as Ctrl-C, so that the run keeps its best model and resume state, noting it in ``received``.

    ``kill`` and batch schedulers (a job's time limit, pre-emption) send SIGTERM, which would
    otherwise end the process at once and lose the epoch under way and the optimizer state; and
    a run started in the background by a script ignores SIGINT.
    """

    def interrupt(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum))
        raise KeyboardInterrupt

    previous = signal.signal(signum, interrupt)
    try:
        yield
    finally:
        signal.signal(signum, previous)


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
