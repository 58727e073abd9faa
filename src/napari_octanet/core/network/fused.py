"""The inference copy of a network: batch norms folded into convolutions, channels-last, grey stem.

Built once per loaded model by :mod:`..inference`; the caller's module is never changed. In eval
mode a batch norm is an affine map per channel, so folding it into the convolution before it gives
the same function with one pass over memory less; channels-last lets oneDNN (CPU) and cuDNN (CUDA)
skip their layout conversions. Together about 0.65-0.7 x the eager time on a CPU, outputs within
a few 1e-6.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .resnest import GreyInputConv2d

M = TypeVar("M", bound=nn.Module)


def inference_copy(network: M, device: torch.device) -> M:
    """An eval-mode copy of ``network`` on ``device``, made fast for inference; ``network`` is untouched."""
    prepared = copy.deepcopy(network).eval().requires_grad_(False)
    fold_batch_norms(prepared)
    store_grey_kernels(prepared)
    return prepared.to(device=device, memory_format=torch.channels_last)


def fold_batch_norms(module: nn.Module) -> None:
    """Fold every eval-mode batch norm into the convolution it follows, leaving an identity in its place.

    The pairs come from each block's ``CONV_BN_PAIRS`` and from a convolution directly followed by
    a batch norm inside an ``nn.Sequential`` (stem, shortcuts, SRS).
    """
    for parent in module.modules():
        pairs = list(getattr(type(parent), "CONV_BN_PAIRS", ()))
        if isinstance(parent, nn.Sequential):
            names = list(parent._modules)
            pairs += [
                (first, second)
                for first, second in zip(names, names[1:], strict=False)
                if isinstance(parent._modules[first], nn.Conv2d) and isinstance(parent._modules[second], nn.BatchNorm2d)
            ]
        for conv_name, norm_name in pairs:
            conv, norm = getattr(parent, conv_name), getattr(parent, norm_name)
            setattr(parent, conv_name, fuse_conv_bn_eval(conv, norm))
            setattr(parent, norm_name, nn.Identity())


def store_grey_kernels(module: nn.Module) -> None:
    """Replace each RGB-weighted first convolution by a 1-channel one holding its kernel summed over RGB."""
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, GreyInputConv2d):
                setattr(parent, name, _grey_conv(child))


def _grey_conv(rgb: GreyInputConv2d) -> nn.Conv2d:
    grey = nn.Conv2d(1, rgb.out_channels, rgb.kernel_size, rgb.stride, rgb.padding, bias=rgb.bias is not None)
    with torch.no_grad():
        grey.weight.copy_(rgb.weight.sum(dim=1, keepdim=True))
        if rgb.bias is not None:
            grey.bias.copy_(rgb.bias)
    return grey.requires_grad_(False)
