"""Choosing the torch device explicitly, saying which one was chosen and why, and the reduced
precision each device computes fastest."""

from __future__ import annotations

import contextlib
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


def fast_precision(device: torch.device) -> torch.dtype | None:
    """The reduced precision ``device`` computes fastest, or None where float32 is fastest.

    float16 on CUDA; bfloat16 on a CPU with Intel AMX (Sapphire Rapids and later), whose tile
    units run bfloat16 convolutions natively: the bundled model segments a 304 px scan in about
    0.55 x its float32 time there, and trains an SCS step in about 0.47 x. Other CPUs emulate
    bfloat16 (about 10 x slower than float32 on an AVX2 AMD EPYC), and MPS is left in float32.
    """
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and _cpu_has_amx():
        return torch.bfloat16
    return None


def uses_fast_precision(mixed_precision: bool | None) -> bool:
    """The meaning of every ``mixed_precision`` setting: None (the default) or True asks for the
    device's fast precision where it has one; only False keeps float32."""
    return mixed_precision is not False


def _cpu_has_amx() -> bool:
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe is not None and probe())


def reduced_precision(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager[object]:
    """Autocast to ``device``'s fast precision where ``enabled`` and it has one; otherwise nothing."""
    dtype = fast_precision(device) if enabled else None
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def precision_name(device: torch.device, enabled: bool = True) -> str:
    """How ``reduced_precision(device, enabled)`` computes, in words for a log line."""
    dtype = fast_precision(device) if enabled else None
    return "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """float32 inside a ``reduced_precision`` block (losses, for instance)."""
    if fast_precision(device) is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, enabled=False)
