from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_octanet.core.checkpoint import CheckpointError, load_model, read_info, save_checkpoint
from napari_octanet.core.inference import segment
from napari_octanet.core.network import LITE, OctaNet
from napari_octanet.core.registry import ModelNotFoundError, ModelRegistry
from tiny_models import TINY


def test_round_trip_gives_identical_outputs(tmp_path: Path, tiny_network: OctaNet) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_network, provenance={"data": "synthetic"})
    loaded = load_model(path)
    image = np.random.default_rng(0).random((2, 70, 64)).astype(np.float32)
    before, after = segment(tiny_network, image, device="cpu"), segment(loaded, image, device="cpu")
    for a, b in zip(
        (before.pixel, before.centerline, before.fine), (after.pixel, after.centerline, after.fine), strict=False
    ):
        np.testing.assert_array_equal(a, b)
    assert loaded.info.network == TINY
    assert loaded.info.provenance == {"data": "synthetic"}


def test_config_is_json_in_the_header(tmp_path: Path, tiny_network: OctaNet) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_network)
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_length])
    config = json.loads(header["__metadata__"]["octanet"])
    assert config["configuration"] == "tiny" and config["network"]["planes"] == [4, 8, 8, 8]


def test_half_precision_export_is_close(tmp_path: Path, tiny_network: OctaNet) -> None:
    full = save_checkpoint(tmp_path / "full.safetensors", tiny_network)
    half = save_checkpoint(tmp_path / "half.safetensors", tiny_network, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    image = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    a = segment(load_model(full), image, device="cpu").fine
    b = segment(load_model(half), image, device="cpu").fine
    assert np.abs(a - b).max() < 1e-2


def test_truncated_file_names_the_file(tmp_path: Path, tiny_network: OctaNet) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_network)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*(truncated|corrupt)"):
        load_model(path)


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.safetensors"
    path.write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError, match="notes.safetensors"):
        read_info(path)


def test_foreign_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path))
    with pytest.raises(CheckpointError, match="not an OCTA-Net checkpoint"):
        load_model(path)


def test_weights_that_do_not_match_their_config(tmp_path: Path, tiny_network: OctaNet) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_network)
    text = path.read_bytes()
    # claim the lite configuration while holding tiny weights
    header_length = int.from_bytes(text[:8], "little")
    header = json.loads(text[8 : 8 + header_length])
    config = json.loads(header["__metadata__"]["octanet"])
    config["network"] = LITE.to_dict()
    header["__metadata__"]["octanet"] = json.dumps(config)
    new_header = json.dumps(header).encode()
    new_header += b" " * (-len(new_header) % 8)
    path.write_bytes(len(new_header).to_bytes(8, "little") + new_header + text[8 + header_length :])
    with pytest.raises(CheckpointError, match="does not match its configuration 'lite'"):
        load_model(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")


def test_a_file_without_read_permission_says_so(
    tmp_path: Path, tiny_network: OctaNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """safetensors reports such a file as missing ('No such file or directory'); chmod would not stop root."""
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_network)
    real_open = Path.open

    def fake_open(self: Path, *args: object, **kwargs: object):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", fake_open)
    with pytest.raises(
        CheckpointError, match=r"m\.safetensors cannot be read: permission denied; make the file readable"
    ):
        read_info(path)


def test_a_write_never_leaves_a_half_file(
    tmp_path: Path, tiny_network: OctaNet, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", tiny_network)
    good = path.read_bytes()

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("napari_octanet.core.files.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny_network)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_registry_resolves_names_and_paths(tmp_path: Path, tiny_network: OctaNet) -> None:
    registry = ModelRegistry()
    path = save_checkpoint(tmp_path / "mine.safetensors", tiny_network)
    seen = []
    registry.subscribe(seen.append)
    entry = registry.register(path, name="mine")
    assert seen == [entry]
    assert registry.resolve("mine") == path.resolve()
    assert registry.resolve(str(path)) == path
    with pytest.raises(ModelNotFoundError, match="neither a registered model"):
        registry.resolve("missing")
    with pytest.raises(ModelNotFoundError, match="paper"):
        registry.resolve("paper")


def test_registry_refuses_a_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError):
        ModelRegistry().register(bad)


def _with_header(path: Path, tiny_network: OctaNet, header: object) -> Path:
    tensors = {k: v.contiguous() for k, v in tiny_network.state_dict().items()}
    save_file(tensors, str(path), metadata={"octanet": json.dumps(header)})
    return path


def test_nan_weights_are_refused_on_load(tmp_path: Path, tiny_network: OctaNet) -> None:
    with torch.no_grad():
        next(tiny_network.fine.parameters()).fill_(float("nan"))
    path = save_checkpoint(tmp_path / "diverged.safetensors", tiny_network)
    with pytest.raises(CheckpointError, match="diverged.safetensors.*NaN"):
        load_model(path)


def test_a_header_that_is_a_json_list_is_a_clear_error(tmp_path: Path, tiny_network: OctaNet) -> None:
    path = _with_header(tmp_path / "list.safetensors", tiny_network, [1, 2, 3])
    with pytest.raises(CheckpointError, match="list.safetensors has an invalid config.*JSON list"):
        read_info(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"planes": [4, 8]}, "planes must list 4 stages"),
        ({"planes": [4, 8, 8, 10**7]}, "planes value 10000000 is outside"),
        ({"blocks": [1, 1, 1, 0]}, "blocks value 0"),
        ({"stem_width": -3}, "stem_width value -3"),
    ],
)
def test_impossible_network_sizes_are_refused_before_building(
    tmp_path: Path, tiny_network: OctaNet, change: dict, message: str
) -> None:
    header = json.loads(read_info(save_checkpoint(tmp_path / "ok.safetensors", tiny_network)).to_json())
    header["network"].update(change)
    path = _with_header(tmp_path / "bad.safetensors", tiny_network, header)
    with pytest.raises(CheckpointError, match=message):
        load_model(path)


def test_checkpoints_follow_the_users_umask(tmp_path: Path, tiny_network: OctaNet) -> None:
    import os

    old = os.umask(0o022)
    try:
        shared = save_checkpoint(tmp_path / "shared.safetensors", tiny_network)
        os.umask(0o077)
        private = save_checkpoint(tmp_path / "private.safetensors", tiny_network)
    finally:
        os.umask(old)
    assert shared.stat().st_mode & 0o777 == 0o644
    assert private.stat().st_mode & 0o777 == 0o600
