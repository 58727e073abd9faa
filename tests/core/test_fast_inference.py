"""The prepared inference copy: same maps as the eager network, the caller's module left as it was."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from napari_octanet.core.allocator import tune_allocator
from napari_octanet.core.checkpoint import load_model
from napari_octanet.core.inference import prepared_network, segment
from napari_octanet.core.network import LITE, NetworkConfig, OctaNet
from napari_octanet.core.network.scs import _UpStep
from napari_octanet.core.preprocess import normalise, pad_to_multiple
from napari_octanet.core.registry import bundled_checkpoint
from napari_octanet.core.synthetic import synthetic_octa
from tiny_models import TINY

CPU = torch.device("cpu")
#: Sums of the bundled model's maps on synthetic_octa(304, seed=3), recorded before the inference
#: copy and the network's faithfulness and grey-input changes (commit 7217031).
BUNDLED_SUMS = {"pixel": 4838.665, "centerline": 2184.2593, "fine": 4826.8135}


def _with_random_statistics(network: OctaNet) -> OctaNet:
    """Give every batch norm non-trivial running statistics and affine terms, so folding is exercised."""
    generator = torch.Generator().manual_seed(1)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(size, generator=generator) * 0.1)
    return network


def _max_difference(network: OctaNet, image: torch.Tensor) -> float:
    with torch.inference_mode():
        eager = network.eval()(image)
        fast = prepared_network(network, CPU)(image)
    return max(float((e - f).abs().max()) for e, f in zip(eager, fast, strict=True))


@pytest.mark.parametrize("faithful", [False, True])
def test_the_inference_copy_matches_the_eager_network(faithful: bool) -> None:
    torch.manual_seed(0)
    network = _with_random_statistics(OctaNet(dataclasses.replace(TINY, faithful=faithful)))
    assert _max_difference(network, torch.rand(2, 1, 64, 96)) < 1e-4


def test_the_bundled_model_is_unchanged_and_fast_path_matches_eager() -> None:
    path = bundled_checkpoint()
    assert path is not None
    network = load_model(path).network
    assert not network.config.faithful
    image, _ = synthetic_octa(304, seed=3)
    maps = segment(network, image, device="cpu", mixed_precision=False)
    for name, total in BUNDLED_SUMS.items():
        assert float(getattr(maps, name).sum()) == pytest.approx(total, abs=0.05), name
    padded, _ = pad_to_multiple(normalise(image[np.newaxis]))
    assert _max_difference(network, torch.from_numpy(padded).unsqueeze(1)) < 1e-4


def test_inference_does_not_change_the_callers_module() -> None:
    torch.manual_seed(0)
    network = OctaNet(TINY).train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    segment(network, np.random.default_rng(0).random((64, 64), dtype=np.float32), device="cpu")
    assert network.training and all(m.training for m in network.modules())
    assert all(p.requires_grad and p.device == CPU for p in network.parameters())
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())
    assert isinstance(network.coarse.encoder.stem[1], nn.BatchNorm2d)


def test_the_copy_is_cached_until_the_weights_change() -> None:
    torch.manual_seed(0)
    network = OctaNet(TINY)
    first = prepared_network(network, CPU)
    assert prepared_network(network, CPU) is first
    with torch.no_grad():
        network.fine.weights[0].weight.add_(1.0)
    second = prepared_network(network, CPU)
    assert second is not first
    image = torch.rand(1, 1, 32, 32)
    assert _max_difference(network, image) < 1e-4


def test_grey_input_through_one_channel_equals_replicated_rgb() -> None:
    torch.manual_seed(0)
    coarse = OctaNet(TINY).eval().coarse
    image = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        grey, rgb = coarse(image), coarse(image.expand(-1, 3, -1, -1))
    assert all(torch.allclose(g, r, atol=1e-6) for g, r in zip(grey, rgb, strict=True))


@pytest.mark.parametrize(
    ("shape", "message"),
    [((1, 1, 40, 64), "multiples of 32"), ((1, 3, 64, 64), r"\(batch, 1, height, width\)"), ((1, 64, 64), "grey")],
)
def test_the_network_states_its_input_contract(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OctaNet(TINY)(torch.rand(shape))


def test_faithful_layout_matches_the_reference_and_old_checkpoints_keep_theirs() -> None:
    faithful = OctaNet(dataclasses.replace(TINY, faithful=True))
    assert isinstance(faithful.coarse.encoder.layer1[0].avd, nn.Identity)
    assert isinstance(faithful.coarse.centerline_decoder.up0, _UpStep)
    legacy = OctaNet(TINY)
    assert isinstance(legacy.coarse.encoder.layer1[0].avd, nn.AvgPool2d)
    assert isinstance(legacy.coarse.centerline_decoder.up0, nn.ConvTranspose2d)
    assert NetworkConfig.from_dict({k: v for k, v in LITE.to_dict().items() if k != "faithful"}) == LITE


def test_allocator_tuning_never_fails() -> None:
    assert isinstance(tune_allocator(), bool)
