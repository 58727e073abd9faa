"""What defines a training run, and its defaults: one home for the CLI, the dock and the trainer.

No torch here, so the dock and the command line can read the defaults without loading it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..network.config import NetworkConfig

#: The share of a time budget that stage 2 (SRS) gets.
FINE_SHARE = 0.1


def default_fine_epochs(epochs: int) -> int:
    """SRS (stage 2) epochs when none are given: a fifth of the SCS epochs, at least one."""
    return max(1, epochs // 5)


#: Side of the square training crops unless a run asks for another (or for whole images).
DEFAULT_CROP_SIZE = 256
#: What the command line takes as a crop size for whole-image training (TrainSettings.crop_size None).
WHOLE_IMAGES = "whole"


def parse_crop_size(text: str) -> int | None:
    """A crop side from text: a number, or WHOLE_IMAGES for None; ValueError names both forms."""
    if text.strip().lower() == WHOLE_IMAGES:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"crop size {text!r} must be a whole number of pixels or {WHOLE_IMAGES!r}") from None


#: Pixel sizes (µm) that en-face OCTA scans come in: 3 mm over 1024 px to 8 mm over 400 px.
RESCALE_RANGE_UM = (3.0, 20.0)


@dataclass(frozen=True)
class AugmentConfig:
    flips: bool = True
    rot90: bool = True
    max_rotation_degrees: float = 10.0
    gamma_range: tuple[float, float] = (0.6, 1.7)
    contrast_range: tuple[float, float] = (0.7, 1.3)
    noise_std: float = 0.02
    #: Rescale crops to pixel sizes drawn across this range (µm), log-uniformly, for half the draws
    #: (the other half keep the scan's own size); None: never. Data of unknown pixel size are taken
    #: as ``scale.UNKNOWN_PIXEL_UM``. Only for crops: whole images keep their size.
    rescale_range_um: tuple[float, float] | None = None

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(False, False, 0.0, (1.0, 1.0), (1.0, 1.0), 0.0)

    @classmethod
    def flips_and_turns(cls) -> AugmentConfig:
        """Only the eight symmetries of the square: no resampling, no intensity changes."""
        return cls(True, True, 0.0, (1.0, 1.0), (1.0, 1.0), 0.0)

    @classmethod
    def upright(cls) -> AugmentConfig:
        """Everything but mirrors and quarter turns: en-face scans share one orientation (docs/training.md: No
        augmentation), while gamma, contrast, noise and small rotations stand in for other devices."""
        return cls(flips=False, rot90=False)

    @classmethod
    def rescaled(cls) -> AugmentConfig:
        """No augmentation but random rescaling across the pixel sizes scans come in (about 3-20 µm,
        ../docs/training.md): the recipe that makes a model hold up on other devices' pixel sizes."""
        return replace(cls.none(), rescale_range_um=RESCALE_RANGE_UM)


#: Smallest batch that trains batch norm (its batch statistics need two samples); one sample is enough
#: when the statistics are frozen (``TrainSettings.freeze_batch_norm``).
MIN_BATCH_SIZE = 2

#: Starting values for fine-tuning trained weights on a few painted scans (the Fine-tune dock): fewer
#: epochs and a gentler learning rate than a run from scratch (TrainSettings' own defaults).
FINE_TUNE_EPOCHS = 20
FINE_TUNE_BATCH_SIZE = 4
FINE_TUNE_LR = 1e-4
#: What the Fine-tune dock draws when its augmentation is on. It starts off when fine-tuning a trained
#: model: on scans like the ones it will segment, no augmentation adapts a model best, and flips and turns
#: cost Dice on these one-orientation scans (docs/training.md: Augmentation in the dock).
FINE_TUNE_AUGMENT = AugmentConfig.upright()

#: Named augmentation choices for the command line and recipes.
AUGMENTS: dict[str, AugmentConfig] = {
    "full": AugmentConfig(),
    "flips": AugmentConfig.flips_and_turns(),
    "upright": AugmentConfig.upright(),
    "none": AugmentConfig.none(),
    "rescale": AugmentConfig.rescaled(),
}


@dataclass
class TrainSettings:
    """Everything that defines a training run (recorded in the checkpoint's provenance)."""

    out: str = "octanet.safetensors"
    #: A named configuration ('lite', 'paper') or a custom NetworkConfig (used with init 'scratch').
    config: str | NetworkConfig = "lite"
    init: str | None = None
    epochs: int = 30
    fine_epochs: int | None = None
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    loss: str = "dice_bce"
    #: Side of the random square crops; None: whole images, each batch drawn from images of one shape
    #: and cropped to the largest square (a multiple of 32) that fits them.
    crop_size: int | None = DEFAULT_CROP_SIZE
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    samples_per_epoch: int | None = None
    balance_groups: bool = False
    patience: int = 10
    seed: int = 0
    device: str = "auto"
    #: None or True: train and validate in the device's fast reduced precision where it has one
    #: (``devices.fast_precision``: float16 on CUDA, bfloat16 on CPUs with AMX); False: float32.
    mixed_precision: bool | None = None
    resume: str | None = None
    #: Wall-clock limit in minutes for both stages (None: none). Stage 1 gets FINE_SHARE less of it;
    #: the learning-rate decay follows whichever runs out first, epochs or time.
    time_budget_minutes: float | None = None
    #: Replace an existing file at ``out``; without it (and without ``resume``) such a file is refused.
    overwrite: bool = False
    #: Keep the resume state (OUT-last) after a completed run; a stopped run always keeps it.
    keep_resume_state: bool = False
    #: Keep an exponential moving average of the trained weights with this decay per step (0.999 is
    #: usual; None: none). The average is what is validated and saved; the trained weights' validation
    #: Dice is recorded beside it in the history.
    ema_decay: float | None = None
    #: Weight of a skeleton recall term (Kirchhoff et al., 2024) added to the loss of the pixel-level
    #: and the SRS map: the share of the centerline target that the map misses. 0: none.
    skeleton_recall: float = 0.0
    #: Keep every batch-norm layer's running statistics as the starting model has them (the layers in
    #: eval mode; their scale and shift still train). For fine-tuning: small batches, or whole-image
    #: batches that each hold one data set, no longer pull the statistics toward one batch's images,
    #: and a batch may hold a single crop. Needs a trained starting model (``init`` or ``resume``).
    freeze_batch_norm: bool = False
    #: Store the best model's weights as float16 (half the size; what the model library keeps).
    half: bool = False
    #: The training scans' pixel size (µm), or their field of view (mm), for every data set; None:
    #: each data set's own where its folders state it (``scale.pixel_size_of_path``), else unknown.
    pixel_size_um: float | None = None
    fov_mm: float | None = None

    def stage_budget_seconds(self, stage: int) -> float | None:
        if self.time_budget_minutes is None:
            return None
        share = FINE_SHARE if self.stage_epochs[1] > 0 else 0.0
        return 60.0 * self.time_budget_minutes * (share if stage == 2 else 1.0 - share)

    @property
    def stage_epochs(self) -> tuple[int, int]:
        fine = self.fine_epochs if self.fine_epochs is not None else default_fine_epochs(self.epochs)
        return self.epochs, fine

    def last_path(self) -> Path:
        out = Path(self.out)
        return out.with_name(out.stem + "-last" + out.suffix)


#: Fields a resumed run's settings may differ in without a word: where the model goes and whether
#: files may be replaced. Any other difference from the resumed run is reported (``resume_changes``).
NOT_RECIPE = frozenset({"out", "init", "resume", "overwrite", "keep_resume_state"})


def settings_record(settings: TrainSettings) -> dict[str, Any]:
    """The JSON-able record of a run's settings that its checkpoints keep (``provenance['settings']``)."""
    return asdict(settings)


def settings_from_record(record: Mapping[str, Any]) -> TrainSettings:
    """The TrainSettings a checkpoint recorded; fields it lacks (older checkpoints) keep their defaults."""
    values = {f.name: record[f.name] for f in fields(TrainSettings) if f.name in record}
    if isinstance(values.get("augment"), Mapping):
        augment = values["augment"].items()
        values["augment"] = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in augment})
    if isinstance(values.get("config"), Mapping):
        values["config"] = NetworkConfig.from_dict(dict(values["config"]))
    return TrainSettings(**values)


def recorded_settings(provenance: Mapping[str, Any]) -> TrainSettings | None:
    """The settings a checkpoint's provenance recorded for the run that wrote it (None if it has none)."""
    record = provenance.get("settings")
    return settings_from_record(record) if isinstance(record, Mapping) else None


def drew_turned_views(provenance: Mapping[str, Any]) -> bool:
    """Whether the run that wrote a checkpoint drew flipped and turned views (True when it does not say).

    A model whose last run drew none (``octa500-rossa``) loses Dice to those views, both averaged at
    test time and drawn again in fine-tuning (docs/training.md: No augmentation).
    """
    recorded = recorded_settings(provenance)
    return recorded is None or (recorded.augment.flips and recorded.augment.rot90)


def resume_changes(settings: TrainSettings, resumed: TrainSettings) -> list[str]:
    """'setting now (was before)' for every setting, other than NOT_RECIPE, that differs from the resumed run's."""
    now, before = settings_record(settings), settings_record(resumed)
    return [
        f"{_LABELS.get(name, name.replace('_', ' '))} {_shown(name, getattr(settings, name))} "
        f"(was {_shown(name, getattr(resumed, name))})"
        for name in now
        if name not in NOT_RECIPE and now[name] != before[name]
    ]


#: How a message names a setting whose field name would be jargon (``resume_changes``); others lose their '_'.
_LABELS = {
    "half": "best model stored in",
    "mixed_precision": "reduced precision",
    "ema_decay": "EMA decay",
    "fine_epochs": "stage-2 epochs",
    "time_budget_minutes": "time budget (minutes)",
}


def _shown(name: str, value: object) -> object:
    """A setting's value as a message shows it: an augmentation by its AUGMENTS name, a switch as on or off."""
    if name == "half":
        return "float16" if value else "float32"
    if name == "crop_size" and value is None:
        return WHOLE_IMAGES
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "auto" if name == "mixed_precision" else "none"
    names = [augment_name for augment_name, augment in AUGMENTS.items() if augment == value]
    return names[0] if names else value
