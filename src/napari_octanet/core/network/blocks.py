"""Building blocks shared by the encoder and the decoders: split attention (ResNeSt)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SplitAttentionConv2d(nn.Module):
    """A ResNeSt split-attention convolution (Zhang et al., 2020).

    The convolution produces ``radix`` feature-map splits per cardinal group; a small
    two-layer attention head, fed by the global average of their sum, weighs the splits
    with an r-softmax and adds them up.
    """

    #: (convolution, batch norm after it) attribute pairs that the inference copy folds (:mod:`.fused`).
    CONV_BN_PAIRS = (("conv", "bn0"), ("fc1", "bn1"))

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        radix: int = 2,
        reduction_factor: int = 4,
        min_inter_channels: int = 32,
    ) -> None:
        super().__init__()
        inter_channels = max(in_channels * radix // reduction_factor, min_inter_channels)
        self.radix = radix
        self.cardinality = groups
        self.channels = channels
        self.conv = nn.Conv2d(
            in_channels,
            channels * radix,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups * radix,
            bias=False,
        )
        self.bn0 = nn.BatchNorm2d(channels * radix)
        self.fc1 = nn.Conv2d(channels, inter_channels, 1, groups=groups)
        self.bn1 = nn.BatchNorm2d(inter_channels)
        self.fc2 = nn.Conv2d(inter_channels, channels * radix, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLU and accumulation: each full-size map is allocated once (peak memory and
        # time of inference), and autograd needs none of the overwritten values.
        x = F.relu(self.bn0(self.conv(x)), inplace=True)
        batch = x.shape[0]
        splits = torch.split(x, self.channels, dim=1)
        # the pool of the splits' sum, without materialising the sum
        gap = torch.stack([F.adaptive_avg_pool2d(split, 1) for split in splits]).sum(dim=0)
        attention = self.fc2(F.relu(self.bn1(self.fc1(gap))))
        attention = self._r_softmax(attention, batch)
        weights = torch.split(attention, self.channels, dim=1)
        out = weights[0] * splits[0]
        for weight, split in zip(weights[1:], splits[1:], strict=True):
            out.addcmul_(weight, split)
        return out

    def _r_softmax(self, attention: torch.Tensor, batch: int) -> torch.Tensor:
        if self.radix == 1:
            return torch.sigmoid(attention)
        attention = attention.view(batch, self.cardinality, self.radix, -1).transpose(1, 2)
        return F.softmax(attention, dim=1).reshape(batch, -1, 1, 1)


class DecoderBlock(nn.Module):
    """The reference's residual split-attention conv block.

    conv3x3 -> BN -> ReLU -> split-attention conv3x3 (2 groups, radix 2), plus a 1x1 conv + BN
    shortcut; the two are summed and passed through a ReLU. The reference's ReLU after the split
    attention is left out: its output, softmax-weighted ReLU outputs, is never negative.
    """

    CONV_BN_PAIRS = (("conv", "bn"),)

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.split_attention = SplitAttentionConv2d(out_channels, out_channels, groups=2, radix=2)
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn(self.conv(x)), inplace=True)
        return F.relu(self.split_attention(y).add_(self.shortcut(x)), inplace=True)


def up_conv(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """The reference's up-sampling step: a 2x2 transposed convolution with stride 2."""
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
