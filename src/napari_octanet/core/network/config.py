"""Named network configurations: `paper` (the reference's ResNeSt-50) and `lite` (for CPUs)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: Inputs are padded to a multiple of this (the encoder's total stride).
SIZE_MULTIPLE = 32
#: Smallest image side the network accepts.
MIN_SIZE = 32


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
        return cls(**values)


PAPER = NetworkConfig(name="paper", blocks=(3, 4, 6, 3), planes=(64, 128, 256, 512), stem_width=32, head_width=32)
#: Half-width ResNeSt stages but a 16-channel full-resolution path (stem, decoder head, SRS): at
#: equal training steps, widening that path from 8 gained 0.022 Dice on OCTA-500 3M (README).
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
