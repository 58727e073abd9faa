"""OCTA-Net: SCS (coarse) then SRS (fine)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .config import MIN_SIZE, SIZE_MULTIPLE, NetworkConfig
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
        self.coarse = CoarseNet(
            config.blocks, config.planes, config.stem_width, config.head_width, config.radix, config.faithful
        )
        self.fine = FineNet(config.fine_width)

    def forward(self, image: torch.Tensor) -> OctaNetOutput:
        check_input_shape(image)
        pixel, centerline = self.coarse(image)
        return OctaNetOutput(pixel, centerline, self.fine(image, pixel, centerline))


def check_input_shape(image: torch.Tensor) -> None:
    """Refuse what the network cannot take with a message that says why, instead of a failing ``torch.cat``.

    The decoders concatenate up-sampled maps with encoder maps, which only line up when each side
    is a multiple of the encoder's total stride (:data:`SIZE_MULTIPLE`); ``inference`` pads to it.
    """
    shape = tuple(image.shape)
    if image.ndim != 4 or shape[1] != 1:
        raise ValueError(f"OctaNet takes (batch, 1, height, width) grey images, got a tensor of shape {shape}")
    height, width = shape[-2:]
    if height < MIN_SIZE or width < MIN_SIZE or height % SIZE_MULTIPLE or width % SIZE_MULTIPLE:
        raise ValueError(
            f"OctaNet needs height and width that are multiples of {SIZE_MULTIPLE} (at least {MIN_SIZE}), "
            f"got {height} x {width}; pad the image (napari_octanet.core.preprocess.pad_to_multiple)"
        )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
