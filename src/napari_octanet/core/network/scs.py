"""SCS, the coarse stage: one ResNeSt encoder, a pixel-level and a centerline-level decoder."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .blocks import DecoderBlock, up_conv
from .resnest import EncoderFeatures, ResNeStEncoder


class CoarseMaps(NamedTuple):
    """Probability maps of the coarse stage, each (B, 1, H, W) in [0, 1]."""

    pixel: torch.Tensor
    centerline: torch.Tensor


class _UpStep(nn.Module):
    """Transposed-conv up-sampling, concatenation with a skip (if any), a decoder block."""

    def __init__(self, in_channels: int, up_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = up_conv(in_channels, up_channels)
        self.block = DecoderBlock(up_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.block(x)


class PixelDecoder(nn.Module):
    """The full U-Net decoder of the pixel-level ("thick") map: layer4 up to full resolution."""

    def __init__(self, stem_channels: int, stage_channels: tuple[int, int, int, int], head_width: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = stage_channels
        self.up4 = _UpStep(c4, c3, c3, c3)
        self.up3 = _UpStep(c3, c2, c2, c2)
        self.up2 = _UpStep(c2, c1, c1, c1)
        self.up1 = _UpStep(c1, stem_channels, stem_channels, stem_channels)
        self.up0 = _UpStep(stem_channels, stem_channels, 0, head_width)
        self.head = nn.Conv2d(head_width, 1, 1)

    def forward(self, f: EncoderFeatures) -> torch.Tensor:
        x = self.up4(f.layer4, f.layer3)
        x = self.up3(x, f.layer2)
        x = self.up2(x, f.layer1)
        x = self.up1(x, f.stem)
        return torch.sigmoid(self.head(self.up0(x)))


class CenterlineDecoder(nn.Module):
    """The shallow centerline-level ("thin") decoder, fed only by layer1 and the stem.

    ``last_block`` adds the reference's residual block after the last up-sampling step
    (``Up_conv1_thin``); without it (the bundled weights' layout) that step up-samples straight
    to ``head_width`` channels.
    """

    def __init__(self, stem_channels: int, layer1_channels: int, head_width: int, last_block: bool = False) -> None:
        super().__init__()
        self.up1 = _UpStep(layer1_channels, stem_channels, stem_channels, stem_channels)
        self.up0: nn.Module = (
            _UpStep(stem_channels, stem_channels, 0, head_width) if last_block else up_conv(stem_channels, head_width)
        )
        self.head = nn.Conv2d(head_width, 1, 1)

    def forward(self, f: EncoderFeatures) -> torch.Tensor:
        x = self.up1(f.layer1, f.stem)
        return torch.sigmoid(self.head(self.up0(x)))


class CoarseNet(nn.Module):
    """Split-based coarse segmentation: shared encoder, pixel- and centerline-level decoders."""

    def __init__(
        self,
        blocks: tuple[int, int, int, int],
        planes: tuple[int, int, int, int],
        stem_width: int,
        head_width: int,
        radix: int = 2,
        faithful: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = ResNeStEncoder(blocks, planes, stem_width, radix, avd_in_layer1=not faithful)
        stem_channels = self.encoder.stem_channels
        stage_channels = self.encoder.out_channels
        self.pixel_decoder = PixelDecoder(stem_channels, stage_channels, head_width)
        self.centerline_decoder = CenterlineDecoder(stem_channels, stage_channels[0], head_width, last_block=faithful)

    def forward(self, x: torch.Tensor) -> CoarseMaps:
        features = self.encoder(x)
        return CoarseMaps(self.pixel_decoder(features), self.centerline_decoder(features))
