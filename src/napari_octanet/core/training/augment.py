"""Training augmentation on (channels, H, W) tensors: channel 0 is the image, the rest targets.

Geometric transforms move image and targets together; intensity transforms touch the image only.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .settings import AugmentConfig


def random_crop(stack: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random size x size window; smaller images are padded (image reflected, targets zero)."""
    stack = _pad_to(stack, size)
    height, width = stack.shape[-2:]
    top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
    return stack[:, top : top + size, left : left + size]


def _pad_to(stack: torch.Tensor, size: int) -> torch.Tensor:
    pad_h, pad_w = max(0, size - stack.shape[-2]), max(0, size - stack.shape[-1])
    if pad_h == 0 and pad_w == 0:
        return stack
    image = F.pad(stack[:1][None], (0, pad_w, 0, pad_h), mode="replicate")[0]
    targets = F.pad(stack[1:], (0, pad_w, 0, pad_h))
    return torch.cat([image, targets])


def augment(stack: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Apply the configured random transforms to one (C, H, W) sample."""

    def chance() -> bool:
        return bool(torch.rand((), generator=generator) < 0.5)

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    if config.flips and chance():
        stack = stack.flip(-1)
    if config.flips and chance():
        stack = stack.flip(-2)
    if config.rot90:
        stack = torch.rot90(stack, int(torch.randint(0, 4, (1,), generator=generator)), dims=(-2, -1))
    if config.max_rotation_degrees > 0:
        stack = rotate(stack, uniform(-config.max_rotation_degrees, config.max_rotation_degrees))
    image = stack[0]
    gamma = math.exp(uniform(math.log(config.gamma_range[0]), math.log(config.gamma_range[1])))
    image = image.clamp(0, 1) ** gamma
    contrast = uniform(*config.contrast_range)
    image = (image - image.mean()) * contrast + image.mean()
    if config.noise_std > 0:
        image = image + config.noise_std * torch.randn(image.shape, generator=generator)
    if config.artifacts > 0 and float(torch.rand((), generator=generator)) < config.artifacts:
        image = add_scan_artifacts(image, generator)
    return torch.cat([image.clamp(0, 1)[None], stack[1:]])


#: Largest amplitude of the smooth brightness field and of the speckle it carries (image in [0, 1]).
MAX_BIAS = 0.4
MAX_SPECKLE = 0.6
MAX_STREAKS = 6
MAX_STREAK_ROWS = 12
#: Streak texture is noise averaged along rows over this many pixels: fast-axis line artifacts.
STREAK_SMOOTHING = 5


def add_scan_artifacts(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness that is not vessel: uneven illumination with speckle, and streaky rows.

    OCTA scans show both (bright, noisy patches; motion and blink artifacts as bright or dark
    bands of lines along the fast scan axis), and the labels mark no vessel in them; a model that
    equates bright with vessel paints blobs there. The targets stay as they were, so the model
    learns to find the vessels under the artifacts and to leave the rest alone.
    """
    height, width = image.shape

    def uniform(high: float) -> float:
        return high * float(torch.rand((), generator=generator))

    coarse = 2 * torch.rand((1, 1, 4, 4), generator=generator) - 1
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0, 0]
    speckle = torch.rand((height, width), generator=generator) ** 2
    image = image + uniform(MAX_BIAS) * field + uniform(MAX_SPECKLE) * field.clamp(min=0) * speckle
    for _ in range(int(torch.randint(0, MAX_STREAKS + 1, (1,), generator=generator))):
        top = int(torch.randint(0, height, (1,), generator=generator))
        rows = min(int(torch.randint(1, MAX_STREAK_ROWS + 1, (1,), generator=generator)), height - top)
        texture = torch.rand((1, rows, width), generator=generator) ** 2
        texture = F.avg_pool1d(texture, STREAK_SMOOTHING, stride=1, padding=STREAK_SMOOTHING // 2)[0]
        band = image[top : top + rows]
        if float(torch.rand((), generator=generator)) < 0.5:
            image[top : top + rows] = band + 2 * uniform(1.0) * texture
        else:
            image[top : top + rows] = band * (0.2 + uniform(0.6)) + uniform(1.0) * texture
    return image


def rotate(stack: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate about the centre (bilinear); targets are re-binarised at 0.5."""
    if degrees == 0:
        return stack
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=stack.dtype)[None]
    grid = F.affine_grid(theta, [1, *stack.shape], align_corners=False)
    rotated = F.grid_sample(stack[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    return torch.cat([rotated[:1], (rotated[1:] > 0.5).to(stack.dtype)])
