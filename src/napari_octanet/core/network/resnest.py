"""A ResNeSt encoder (deep stem, split attention, avg-down shortcuts, avd), depth and width configurable.

Only what OCTA-Net runs is built: the stem and the four residual stages, no classifier head.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import SplitAttentionConv2d

EXPANSION = 4


class EncoderFeatures(NamedTuple):
    """Feature maps for an input of size H: stem at H/2, layer1 at H/4 ... layer4 at H/32."""

    stem: torch.Tensor
    layer1: torch.Tensor
    layer2: torch.Tensor
    layer3: torch.Tensor
    layer4: torch.Tensor


class Bottleneck(nn.Module):
    """ResNeSt bottleneck: 1x1 reduce, split-attention 3x3, 1x1 expand (x4), residual add."""

    CONV_BN_PAIRS = (("conv1", "bn1"), ("conv3", "bn3"))

    def __init__(self, in_channels: int, planes: int, stride: int, radix: int, use_avd: bool) -> None:
        super().__init__()
        width = planes
        out_channels = planes * EXPANSION
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        # avd: the stride moves from the 3x3 conv into a 3x3 average pool after it.
        self.avd = nn.AvgPool2d(3, stride, padding=1) if use_avd else nn.Identity()
        self.conv2 = SplitAttentionConv2d(width, width, 3, stride=1, radix=radix)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = self._avg_down(in_channels, out_channels, stride)

    @staticmethod
    def _avg_down(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
        """Shortcut that averages before the 1x1 projection instead of striding it (avg-down)."""
        if stride == 1 and in_channels == out_channels:
            return None
        pool: nn.Module = (
            nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1 else nn.Identity()
        )
        return nn.Sequential(pool, nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.avd(self.conv2(out))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out.add_(shortcut), inplace=True)


def _stage(in_channels: int, planes: int, blocks: int, stride: int, radix: int, avd_first: bool) -> nn.Sequential:
    layers = [Bottleneck(in_channels, planes, stride, radix, use_avd=stride > 1 or avd_first)]
    layers += [Bottleneck(planes * EXPANSION, planes, 1, radix, use_avd=False) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class GreyInputConv2d(nn.Conv2d):
    """A convolution that keeps RGB weights (as the reference and the checkpoints store them) but reads grey.

    A grey image replicated to 3 channels meets the sum of the weights over those channels, so a
    (B, 1, H, W) input is convolved with that sum instead of being repeated; a 3-channel input is
    convolved as usual. The inference copy (:mod:`.fused`) stores the summed kernel once.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.in_channels != 1:
            return self._conv_forward(x, self.weight.sum(dim=1, keepdim=True), self.bias)
        return super().forward(x)


class ResNeStEncoder(nn.Module):
    """ResNeSt with a deep stem of three 3x3 convs; returns the five feature maps OCTA-Net uses.

    ``avd_in_layer1`` puts the avd pool in layer1's first block although its stride is 1, as the
    bundled weights were trained; the reference (``is_first=False``) has none there.
    """

    def __init__(
        self,
        blocks: tuple[int, int, int, int],
        planes: tuple[int, int, int, int],
        stem_width: int,
        radix: int = 2,
        avd_in_layer1: bool = True,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            GreyInputConv2d(3, stem_width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, 2 * stem_width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * stem_width),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 2 * stem_width
        stages = []
        for index, (n_blocks, n_planes) in enumerate(zip(blocks, planes, strict=True)):
            stride = 1 if index == 0 else 2
            stages.append(_stage(channels, n_planes, n_blocks, stride, radix, avd_first=avd_in_layer1 and index == 0))
            channels = n_planes * EXPANSION
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.stem_channels = 2 * stem_width
        self.out_channels = tuple(p * EXPANSION for p in planes)

    def forward(self, x: torch.Tensor) -> EncoderFeatures:
        stem = self.stem(x)
        layer1 = self.layer1(self.maxpool(stem))
        layer2 = self.layer2(layer1)
        layer3 = self.layer3(layer2)
        layer4 = self.layer4(layer3)
        return EncoderFeatures(stem, layer1, layer2, layer3, layer4)
