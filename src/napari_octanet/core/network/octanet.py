"""OCTA-Net: SCS (coarse) then SRS (fine)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .config import NetworkConfig
from .scs import CoarseNet
from .srs import FineNet


class OctaNetOutput(NamedTuple):
    """The three probability maps, each (B, 1, H, W) in [0, 1]."""

    pixel: torch.Tensor
    centerline: torch.Tensor
    fine: torch.Tensor


class OctaNet(nn.Module):
    """The two-stage network. Input: (B, 1, H, W) grey images in [0, 1], H and W multiples of 32."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.coarse = CoarseNet(config.blocks, config.planes, config.stem_width, config.head_width, config.radix)
        self.fine = FineNet(config.fine_width)

    def forward(self, image: torch.Tensor) -> OctaNetOutput:
        pixel, centerline = self.coarse(image.expand(-1, 3, -1, -1))
        return OctaNetOutput(pixel, centerline, self.fine(image, pixel, centerline))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
