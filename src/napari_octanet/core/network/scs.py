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

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, added: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.up(x)
        if added is not None:
            x = x.add_(added)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.block(x)


class ImageBranch(nn.Module):
    """Full-resolution features of the input image, to be added to the decoder's last up-sampling.

    Two 3x3 conv -> BN -> ReLU layers of ``width`` channels and a 1x1 projection to the up-sampled
    map's channels. The decoder's last step otherwise sees only stem features at half resolution,
    which blurs vessels one or two pixels wide. Adding instead of concatenating keeps the costly
    full-resolution decoder block as narrow as before (a few ms at 304 px on a CPU). The projection
    starts at zero, so the branch starts as a no-op: weights of a network without it load unchanged
    and fine-tune from the same function.
    """

    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        self.projection = nn.Conv2d(width, out_channels, 1)
        nn.init.zeros_(self.projection.weight)
        nn.init.zeros_(self.projection.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(image))


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

    def forward(self, f: EncoderFeatures, image_features: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up4(f.layer4, f.layer3)
        x = self.up3(x, f.layer2)
        x = self.up2(x, f.layer1)
        x = self.up1(x, f.stem)
        return torch.sigmoid(self.head(self.up0(x, added=image_features)))


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
        image_skip: int = 0,
    ) -> None:
        super().__init__()
        self.encoder = ResNeStEncoder(blocks, planes, stem_width, radix, avd_in_layer1=not faithful)
        stem_channels = self.encoder.stem_channels
        stage_channels = self.encoder.out_channels
        self.image_branch = ImageBranch(image_skip, stem_channels) if image_skip else None
        self.pixel_decoder = PixelDecoder(stem_channels, stage_channels, head_width)
        self.centerline_decoder = CenterlineDecoder(stem_channels, stage_channels[0], head_width, last_block=faithful)

    def forward(self, x: torch.Tensor) -> CoarseMaps:
        features = self.encoder(x)
        image_features = self.image_branch(x) if self.image_branch is not None else None
        return CoarseMaps(self.pixel_decoder(features, image_features), self.centerline_decoder(features))
