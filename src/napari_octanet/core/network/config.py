"""Named network configurations: `paper` (the reference's ResNeSt-50) and `lite` (for CPUs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: Inputs are padded to a multiple of this (the encoder's total stride).
SIZE_MULTIPLE = 32
#: Smallest image side the network accepts.
MIN_SIZE = 32
#: Bounds a configuration is checked against: about twice the paper's depth and widths, so that a
#: corrupt or hostile checkpoint header cannot make the network allocate more than a few GB.
MAX_BLOCKS = 8
MAX_PLANES = 1024
MAX_WIDTH = 256
MAX_RADIX = 4


@dataclass(frozen=True)
class NetworkConfig:
    """Depth and width of OCTA-Net; everything a checkpoint needs to rebuild the network."""

    name: str
    blocks: tuple[int, int, int, int]
    planes: tuple[int, int, int, int]
    stem_width: int
    head_width: int
    radix: int = 2
    fine_width: int = 64
    #: Match the reference code's structure: no avd pool in layer1's first block and a residual
    #: block after the centerline decoder's last up-sampling step. False (the default, and what a
    #: checkpoint without the field means) keeps the layout the bundled weights were trained with.
    faithful: bool = False

    def __post_init__(self) -> None:
        """Refuse impossible or absurd sizes before any layer is built (a corrupt file once asked for 360 GB)."""
        for key, values in (("blocks", self.blocks), ("planes", self.planes)):
            if len(values) != 4:
                raise ValueError(f"{key} must list 4 stages, got {len(values)}: {list(values)}")
        checks = [("blocks", v, MAX_BLOCKS) for v in self.blocks] + [("planes", v, MAX_PLANES) for v in self.planes]
        checks += [(k, getattr(self, k), MAX_WIDTH) for k in ("stem_width", "head_width", "fine_width")]
        checks.append(("radix", self.radix, MAX_RADIX))
        for key, value, largest in checks:
            if not isinstance(value, int) or not 1 <= value <= largest:
                raise ValueError(f"{key} value {value!r} is outside 1..{largest}")
        if not isinstance(self.faithful, bool):
            raise ValueError(f"faithful must be true or false, got {self.faithful!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown network settings {sorted(unknown)}")
        values = dict(data)
        for key in ("blocks", "planes"):
            if key in values:
                values[key] = tuple(int(v) for v in values[key])
        for key in ("stem_width", "head_width", "fine_width", "radix"):
            if key in values:
                values[key] = int(values[key])
        return cls(**values)


PAPER = NetworkConfig(
    name="paper", blocks=(3, 4, 6, 3), planes=(64, 128, 256, 512), stem_width=32, head_width=32, faithful=True
)
#: Half-width ResNeSt stages but a 16-channel full-resolution path (stem, decoder head, SRS): at
#: equal training steps, widening that path from 8 gained 0.022 Dice on OCTA-500 3M (docs/training.md).
LITE = NetworkConfig(
    name="lite", blocks=(1, 2, 2, 1), planes=(16, 32, 64, 128), stem_width=16, head_width=16, fine_width=16
)

CONFIGS: dict[str, NetworkConfig] = {c.name: c for c in (PAPER, LITE)}


def get_config(name: str) -> NetworkConfig:
    """Look a named configuration up, with a message that lists the names that exist."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; choose one of {sorted(CONFIGS)}") from None
