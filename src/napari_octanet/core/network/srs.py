"""SRS, the fine stage: a learned per-pixel convex combination of the 3x3 neighbourhood."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

KERNEL_TAPS = 9
CENTRE_TAP = 4
CENTRE_PRIOR = 3.0


class FineNet(nn.Module):
    """Adaptive 3x3 aggregation of max(pixel map, centerline map).

    A small conv branch reads (image, pixel map, centerline map) and predicts, at each pixel,
    softmax weights over the 9 taps of a 3x3 neighbourhood; the output is the weighted sum of
    the coarse maximum over that neighbourhood. Being a convex combination it stays in [0, 1].
    The reference puts BN -> ReLU after the last conv, which cancels a conv bias, so the
    centre-tap prior is set on that BN's shift instead: the stage starts close to the identity.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        tap_norm = nn.BatchNorm2d(KERNEL_TAPS)
        with torch.no_grad():
            tap_norm.bias.zero_()
            tap_norm.bias[CENTRE_TAP] = CENTRE_PRIOR
        self.weights = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, KERNEL_TAPS, 3, padding=1),
            tap_norm,
            nn.ReLU(inplace=True),
        )

    def forward(self, image: torch.Tensor, pixel: torch.Tensor, centerline: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = pixel.shape
        taps = F.softmax(self.weights(torch.cat([image, pixel, centerline], dim=1)), dim=1)
        coarse = torch.maximum(pixel, centerline)
        neighbourhood = F.unfold(coarse, kernel_size=3, padding=1).view(batch, KERNEL_TAPS, height, width)
        return (taps * neighbourhood).sum(dim=1, keepdim=True)
