"""The images ``octanet train`` trains and validates on, and what a resumed run takes from its state."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..core.training.settings import TrainSettings


@dataclass(frozen=True)
class DataChoice:
    """The images a run trains and validates on; its checkpoints record it (provenance 'data_choice'),
    so that ``--resume`` reads the same images when DATA and the split options are not given again."""

    #: Dataset folders, absolute (a resumed run may start in another working folder).
    data: tuple[str, ...] = ()
    layout: str = "auto"
    split: str = "train"
    #: Validation on this split of the same folders; without it, this fraction of the training images.
    val_split: str | None = None
    val_fraction: float = 0.1


#: The data options where neither an option nor a resumed run says otherwise.
DATA_DEFAULTS = DataChoice()


def load_data(choice: DataChoice, seed: int) -> tuple[list[Any], list[Any]]:
    """Training and validation images; files left out (no partner, unreadable) are listed on stderr."""
    from ..core.training.data import split_train_val

    train = _images_of_split(choice, choice.split)
    if choice.val_split:
        if choice.val_split.lower().startswith("test"):
            raise ValueError("validating on a test split would leak it into model selection; use a val split")
        return train, _images_of_split(choice, choice.val_split)
    return split_train_val(train, choice.val_fraction, seed)


def _images_of_split(choice: DataChoice, split: str) -> list[Any]:
    from ..core.layouts import index_dataset
    from ..core.training.data import training_images_from_index

    images = []
    for root in choice.data:
        index = index_dataset(root, choice.layout, split)
        if index.unpaired or index.unreadable:
            print(index.report(), file=sys.stderr)
        images += training_images_from_index(index)
    return images


@dataclass(frozen=True)
class ResumedRun:
    """What a resume state records of the run that wrote it."""

    path: Path
    #: None for a state from before runs recorded their settings.
    settings: TrainSettings | None
    #: The data and validation options; a state from before they were recorded knows only DATA.
    data: DataChoice
    data_recorded: bool
    #: The command line that started the run ('' if not recorded).
    command: str

    def out(self) -> Path:
        """The run's model file: beside the state (OUT-last -> OUT), wherever the two were moved to."""
        from ..core.library import RESUME_STEM_END

        if self.path.stem.endswith(RESUME_STEM_END):
            return self.path.with_name(self.path.stem.removesuffix(RESUME_STEM_END) + self.path.suffix)
        if self.settings is None:
            raise ValueError(f"{self.path} does not say where its run's model goes: give --out")
        return Path(self.settings.out)


def resumed_run(state: str) -> ResumedRun:
    """The run that ``--resume`` names; a finished model (no resume state in it) is refused, saying what to do."""
    from ..core.checkpoint import read_info
    from ..core.training.settings import recorded_settings

    info = read_info(state)
    if not info.training_state:
        raise ValueError(
            f"--resume {state}: this is a finished model, not a resume state (the OUT-last.safetensors that a "
            f"stopped run keeps); to train it further, start a new run from it with --init {state}"
        )
    provenance = info.provenance
    record = provenance.get("data_choice")
    if isinstance(record, dict):
        known = {field.name for field in fields(DataChoice)}
        data = DataChoice(**{**{k: v for k, v in record.items() if k in known}, "data": tuple(record.get("data", ()))})
    else:  # from before the choice was recorded: DATA as it was given then
        data = DataChoice(data=tuple(provenance.get("data", ())))
    command = str(provenance.get("command", ""))
    return ResumedRun(Path(state), recorded_settings(provenance), data, isinstance(record, dict), command)


def data_choice_from(args: argparse.Namespace, resumed: ResumedRun | None) -> DataChoice:
    """The data options given, over the resumed run's (--resume) or the defaults; DATA is needed without --resume."""
    base = resumed.data if resumed is not None else DATA_DEFAULTS
    data = tuple(os.path.abspath(folder) for folder in args.data) or base.data
    if not data:
        raise ValueError("no DATA: name the dataset folder(s) to train on")
    validation_given = args.val_split is not None or args.val_fraction is not None
    return DataChoice(
        data=data,
        layout=args.layout or base.layout,
        split=args.split or base.split,
        val_split=args.val_split if validation_given else base.val_split,
        val_fraction=args.val_fraction if args.val_fraction is not None else base.val_fraction,
    )
