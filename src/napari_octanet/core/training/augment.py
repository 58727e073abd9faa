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


#: The share of draws that keep the scan's own pixel size when crops are rescaled: the sizes the data
#: came in stay the ones the model is best at (inference resamples into them where the size is known).
NATIVE_SHARE = 0.5


def rescaled_crop(
    stack: torch.Tensor,
    size: int,
    pixel_size_um: float,
    range_um: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """A random size x size crop at a pixel size drawn log-uniformly across ``range_um``, for half the draws.

    The crop's window in the scan is size x target / pixel_size source pixels, resized to size px:
    the image bilinearly (antialiased when shrinking), the targets re-binarised at 0.5 and the
    centerline target thinned to one pixel again. Pixel sizes coarser than a window the scan can
    hold are not drawn, so nothing is padded.
    """
    low, high = range_um
    coarsest = min(high, pixel_size_um * min(stack.shape[-2:]) / size)
    if float(torch.rand((), generator=generator)) < NATIVE_SHARE or coarsest < low:
        return random_crop(stack, size, generator)
    target = math.exp(math.log(low) + (math.log(coarsest) - math.log(low)) * float(torch.rand((), generator=generator)))
    window = min(round(size * target / pixel_size_um), *stack.shape[-2:])
    crop = random_crop(stack, window, generator)
    resized = F.interpolate(
        crop[None], size=(size, size), mode="bilinear", align_corners=False, antialias=window > size
    )
    return torch.cat([resized[0, :1].clamp(0, 1), _rebinarised(resized[0, 1:])])


def _rebinarised(targets: torch.Tensor) -> torch.Tensor:
    """Resized (pixel, centerline, label) targets as 0/1 again, the centerline one pixel wide."""
    from skimage.morphology import skeletonize

    binary = (targets > 0.5).to(targets.dtype)
    # A resized one-pixel line is fainter (shrunk) or wider (enlarged) than 0.5 marks: thin what it touches.
    centerline = skeletonize((targets[1] > 0.25).numpy())
    binary[1] = torch.from_numpy(centerline).to(targets.dtype)
    return binary


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
    return torch.cat([image.clamp(0, 1)[None], stack[1:]])


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
