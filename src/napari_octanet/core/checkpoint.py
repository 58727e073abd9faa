"""Checkpoints: safetensors weights with a JSON config in the file's metadata header.

One file holds both, so the weights and the description of the network that reads them
cannot drift apart, and a write is one atomic rename. No pickled objects are ever loaded.

Reading a header (:func:`read_info`) needs no torch, so the docks and the model list can describe
checkpoints at start-up; torch loads only where weights are written or loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from .files import write_atomically
from .network import NetworkConfig

if TYPE_CHECKING:
    import torch

    from .network import OctaNet

FORMAT = "napari-octanet-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "octanet"
#: How images are scaled before the network, recorded so a checkpoint states its contract.
NORMALISATION = "grey; each slice's 0.1st and 99.9th percentiles to 0 and 1, clipped; replicated to 3 channels"
OPTIMIZER_PREFIX = "optimizer."


class CheckpointError(ValueError):
    """A file that is not a readable OCTA-Net checkpoint; the message names the file and why."""


@dataclass
class CheckpointInfo:
    """Everything in a checkpoint besides the weights."""

    network: NetworkConfig
    provenance: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] = field(default_factory=dict)
    normalisation: str = NORMALISATION

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "configuration": self.network.name,
                "network": self.network.to_dict(),
                "normalisation": self.normalisation,
                "provenance": self.provenance,
                "training_state": self.training_state,
            },
            sort_keys=True,
        )


@dataclass
class LoadedModel:
    network: OctaNet
    info: CheckpointInfo
    source: str


def save_checkpoint(
    path: str | os.PathLike[str],
    network: OctaNet,
    *,
    provenance: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    optimizer_tensors: dict[str, torch.Tensor] | None = None,
    half: bool = False,
) -> Path:
    """Write weights and config atomically: a temporary file in the same folder, then a rename.

    ``half`` stores floating-point weights as float16 (half the size; loading casts them back).
    """
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = CheckpointInfo(network.config, provenance or {}, training_state or {})
    tensors = {k: _stored(v, half) for k, v in network.state_dict().items()}
    for key, value in (optimizer_tensors or {}).items():
        tensors[OPTIMIZER_PREFIX + key] = value.detach().to("cpu").contiguous()
    payload = save(tensors, metadata={METADATA_KEY: info.to_json()})
    return write_atomically(path, lambda tmp: tmp.write_bytes(payload))


def _stored(tensor: torch.Tensor, half: bool) -> torch.Tensor:
    import torch

    tensor = tensor.detach().to("cpu")
    if half and tensor.is_floating_point():
        tensor = tensor.to(torch.float16)
    return tensor.contiguous()


def read_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Read and check a checkpoint's config without loading its weights."""
    path = Path(path)
    metadata = _open(path, lambda f: f.metadata(), framework="numpy")
    return _parse_metadata(path, metadata)


def _open(path: Path, read: Any, framework: str = "pt") -> Any:
    """Apply ``read`` to the open file; ``framework`` is the tensor kind it gets ("numpy" needs no torch)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist (or is not a file)")
    try:
        path.open("rb").close()  # safetensors reports a file it may not read as missing
    except OSError as error:
        reason = (
            "permission denied; make the file readable (chmod u+r)"
            if isinstance(error, PermissionError)
            else error.strerror
        )
        raise CheckpointError(f"checkpoint {path} cannot be read: {reason}") from None
    try:
        with safe_open(str(path), framework=framework, device="cpu") as handle:
            return read(handle)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is not a readable safetensors file (truncated or corrupt?): {error}"
        ) from None


def _parse_metadata(path: Path, metadata: dict[str, str] | None) -> CheckpointInfo:
    if not metadata or METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path} is a safetensors file but not an OCTA-Net checkpoint (no '{METADATA_KEY}' config in its header)"
        )
    try:
        data = json.loads(metadata[METADATA_KEY])
        if not isinstance(data, dict):
            raise ValueError(f"its header holds a JSON {type(data).__name__}, not an object")
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"format version {data['format_version']} is newer than this napari-octanet reads "
                f"({FORMAT_VERSION}); upgrade napari-octanet"
            )
        network = NetworkConfig.from_dict(data["network"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {error}") from None
    return CheckpointInfo(
        network,
        data.get("provenance", {}),
        data.get("training_state", {}),
        data.get("normalisation", NORMALISATION),
    )


def load_checkpoint(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[LoadedModel, dict[str, torch.Tensor]]:
    """Rebuild the network from a checkpoint; also return any stored optimizer tensors."""
    from .network import OctaNet

    path = Path(path)

    def read_all(handle: Any) -> tuple[dict[str, str] | None, dict[str, torch.Tensor]]:
        return handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable

    metadata, tensors = _open(path, read_all)
    info = _parse_metadata(path, metadata)
    optimizer = {k[len(OPTIMIZER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    weights = {k: v for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX)}
    network = OctaNet(info.network)
    _check_weights(path, network, weights)
    _check_finite(path, weights)
    network.load_state_dict(weights)
    network.to(device).eval()
    return LoadedModel(network, info, str(path)), optimizer


def _check_weights(path: Path, network: OctaNet, weights: dict[str, torch.Tensor]) -> None:
    expected = network.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            key = wrong[0]
            details.append(
                f"{len(wrong)} of the wrong shape (e.g. {key}: {tuple(weights[key].shape)} "
                f"in the file, {tuple(expected[key].shape)} for configuration {network.config.name!r})"
            )
        raise CheckpointError(
            f"checkpoint {path} does not match its configuration {network.config.name!r}: " + "; ".join(details)
        )


def _check_finite(path: Path, weights: dict[str, torch.Tensor]) -> None:
    """Refuse weights with NaN or infinite values: such a model's every output would be garbage."""
    import torch

    broken = [key for key, value in weights.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if broken:
        raise CheckpointError(
            f"checkpoint {path} has NaN or infinite weights in {len(broken)} tensor(s) (e.g. {broken[0]}): "
            "training diverged; use an earlier checkpoint or train again with a lower learning rate"
        )


def load_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> LoadedModel:
    """Load a checkpoint for inference."""
    model, _ = load_checkpoint(path, device)
    return model
