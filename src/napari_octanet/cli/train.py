"""``octanet train``: two-stage training or fine-tuning, with a progress bar; also under torchrun."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from argparse import SUPPRESS
from dataclasses import asdict, replace
from pathlib import Path

from ..core.devices import DEVICE_CHOICES
from ..core.training.settings import AUGMENTS, MIN_BATCH_SIZE, WHOLE_IMAGES, TrainSettings, parse_crop_size
from ._common import (
    add_pixel_size_options,
    add_precision_option,
    add_threads_option,
    apply_threads,
    mixed_precision_of,
    pixel_size_rule,
)
from ._train_data import DATA_DEFAULTS, DataChoice, ResumedRun, data_choice_from, load_data, resumed_run
from ._train_progress import ProgressBar, stopping_on

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
        "the state. A resumed run (--resume OUT-last.safetensors) goes on with the data, --out and settings it was "
        "started with; options given with --resume change them, and the run says which.",
    )
    recipe = parser.add_argument_group(
        "recipe", "what the run learns; with --resume, only the options given here change the resumed run's"
    )
    parser.add_argument(
        "data", nargs="*", metavar="DATA", help="dataset folder(s); all are used together (with --resume: the run's)"
    )
    parser.add_argument("--layout", default=None, choices=("auto", *LAYOUTS), help=f"(default {DATA_DEFAULTS.layout})")
    parser.add_argument(
        "--split",
        default=None,
        help="training split: the split folders named this or starting with it and '_' (train also takes "
        f"train_manual and train_sam; default {DATA_DEFAULTS.split})",
    )
    validation = parser.add_mutually_exclusive_group()
    validation.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help=f"fraction of the training images held out for validation (default {DATA_DEFAULTS.val_fraction})",
    )
    validation.add_argument(
        "--val-split",
        default=None,
        help="validate on this split of the same folders instead, matched as --split is (e.g. val; never test)",
    )
    recipe.add_argument(
        "--config", default=SUPPRESS, choices=tuple(CONFIGS), help=f"network configuration (default {DEFAULTS.config})"
    )
    parser.add_argument(
        "--init", default=None, help="'scratch' (default), 'default' (the bundled model) or a checkpoint to fine-tune"
    )
    parser.add_argument(
        "--resume",
        default=None,
        help="an OUT-last.safetensors file (kept by a stopped run) to continue from, with its data, --out and settings",
    )
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
        "--out",
        type=Path,
        default=None,
        help="best checkpoint path, a .safetensors file (default: the model library, under --name)",
    )
    parser.add_argument("--name", default=None, help="model name in the library (default: octanet-CONFIG-DATE)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--keep-resume-state", action="store_true", default=None, help="keep OUT-last.safetensors after a completed run"
    )
    parser.add_argument("--device", default=None, help=f"one of {', '.join(DEVICE_CHOICES)} (default auto)")
    add_threads_option(parser)
    add_precision_option(parser)
    add_pixel_size_options(parser, "for every data set (with --resume: the run's)")
    parser.add_argument("--note", default="", help="free text stored in the checkpoint's provenance")
    # None for a switch not given, so that a resumed run can tell it from one given off.
    parser.set_defaults(run=run, full_precision=None)


def _crop_size(text: str) -> int | None:
    try:
        return parse_crop_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def output_path(args: argparse.Namespace, settings: TrainSettings) -> Path:
    """--out, or a new file in the model library named after --name (never an existing one)."""
    from ..core.library import SUFFIX, check_model_file_name, models_dir, unique_name

    if args.out is not None:
        check_model_file_name(args.out, "--out")
        return args.out

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


def settings_from(args: argparse.Namespace, resumed: ResumedRun | None = None) -> TrainSettings:
    """The run's settings: the options given, over the resumed run's settings (``resumed``: what --resume
    names) or the defaults. A resumed run also keeps its model file unless --out or --name is given."""
    given = {field: getattr(args, field) for field in RECIPE_FIELDS if hasattr(args, field)}
    if "augment" in given:
        given["augment"] = AUGMENTS[given["augment"]]
    switches = {"init": args.init, "device": args.device, "keep_resume_state": args.keep_resume_state}
    switches |= {"pixel_size_um": args.pixel_size_um, "fov_mm": args.fov_mm}
    given |= {field: value for field, value in switches.items() if value is not None}
    if args.full_precision is not None:
        given["mixed_precision"] = mixed_precision_of(args)
    base = resumed.settings if resumed is not None and resumed.settings is not None else DEFAULTS
    settings = replace(base, **given)
    if resumed is None or args.out is not None or args.name is not None:
        settings = replace(settings, out=str(output_path(args, settings)), half=args.out is None)
    else:
        settings = replace(settings, out=str(resumed.out()))
    return replace(settings, resume=args.resume, overwrite=args.overwrite)


def resume_note(args: argparse.Namespace, resumed: ResumedRun, choice: DataChoice) -> str:
    """What a resumed run takes from its state rather than from the command line, in a line or two."""
    validation = f"--val-split {choice.val_split}" if choice.val_split else f"--val-fraction {choice.val_fraction}"
    validation_given = args.val_split is not None or args.val_fraction is not None
    taken = [f"DATA {' '.join(choice.data)}"] if not args.data else []
    if resumed.data_recorded:
        if args.split is None and choice.split != DATA_DEFAULTS.split:
            taken.append(f"--split {choice.split}")
        if not validation_given:
            taken.append(validation)
    if args.out is None and args.name is None:
        taken.append(f"--out {resumed.out()}")
    if any(not hasattr(args, field) for field in RECIPE_FIELDS):
        taken.append("the recipe options not given now")
    lines = [f"resuming {resumed.path} as its run was started: {_listed(taken)}"] if taken else []
    if not resumed.data_recorded and (args.split is None or not validation_given):
        started = f"; it was started as: {resumed.command}" if resumed.command else ""
        lines.append(
            f"note: {resumed.path} predates the recording of the split and validation options, so they are "
            f"--split {choice.split} and {validation} unless given now{started}"
        )
    return "\n".join(lines)


def _listed(items: list[str]) -> str:
    return ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else items[0]


def run(args: argparse.Namespace) -> int:
    from ..core.training.trainer import check_settings, iter_train

    apply_threads(args)
    pixel_size_rule(args)
    is_main = int(os.environ.get("RANK", "0")) == 0
    resumed = resumed_run(args.resume) if args.resume else None
    choice = data_choice_from(args, resumed)
    settings = settings_from(args, resumed)
    check_settings(settings)
    if resumed is not None and is_main and (note := resume_note(args, resumed, choice)):
        print(note, file=sys.stderr)
    train, val = load_data(choice, settings.seed)
    groups: dict[str, int] = {}
    for image in train:
        groups[image.group] = groups.get(image.group, 0) + 1
    provenance = {
        "command": shlex.join(["octanet", *sys.argv[1:]]) if sys.argv else "",
        "data": list(choice.data),
        "data_choice": asdict(choice),
        "training_images": groups,
        "validation_images": len(val),
        "note": args.note,
    }
    bar = ProgressBar(enabled=is_main)
    generator = iter_train(train, val, settings, provenance=provenance)
    stopped_by: list[signal.Signals] = []
    try:
        with stopping_on(signal.SIGTERM, stopped_by):
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


def _what_was_kept(settings: TrainSettings) -> str:
    best, last = Path(settings.out), settings.last_path()
    if not best.is_file():
        return "no epoch had finished, so nothing was kept"
    resume = f"; resume with: octanet train --resume {last}" if last.is_file() else ""
    return f"the best model so far is kept at {best}{resume}"
