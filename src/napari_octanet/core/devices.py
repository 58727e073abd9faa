"""Choosing the torch device explicitly, and saying which one was chosen and why."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


class DeviceError(RuntimeError):
    """A device the user named is not available on this machine."""


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    reason: str

    def __str__(self) -> str:
        return f"{self.device} ({self.reason})"


def available_devices() -> list[str]:
    """The device names usable here, best first (always ends with 'cpu')."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if _mps_available():
        names.append("mps")
    names.append("cpu")
    return names


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> DeviceChoice:
    """Turn 'auto', 'cuda', 'cuda:1', 'mps' or 'cpu' into a device.

    'auto' takes CUDA, then Apple MPS, then the CPU, and the reason says so. A device named
    explicitly that this machine lacks is an error, never a silent fall-back to the CPU.
    """
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return DeviceChoice(torch.device("cuda"), f"auto: CUDA GPU {torch.cuda.get_device_name(0)}")
        if _mps_available():
            return DeviceChoice(torch.device("mps"), "auto: Apple MPS")
        return DeviceChoice(torch.device("cpu"), "auto: no CUDA or MPS device found, using the CPU")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                "device 'cuda' was requested but this machine has no usable CUDA GPU "
                "(or torch was installed without CUDA); use --device auto or cpu"
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {text!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return DeviceChoice(device, f"requested: {torch.cuda.get_device_name(index)}")
    if device.type == "mps" and not _mps_available():
        raise DeviceError("device 'mps' was requested but Apple MPS is not available; use auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {name!r}; use one of {', '.join(DEVICE_CHOICES)}")
    return DeviceChoice(device, "requested")
