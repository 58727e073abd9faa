from __future__ import annotations

import pytest
import torch

from napari_octanet.core.network import LITE, PAPER, NetworkConfig, OctaNet, count_parameters, get_config
from napari_octanet.core.network.blocks import SplitAttentionConv2d
from napari_octanet.core.network.srs import FineNet


def test_paper_configuration_matches_the_reference_size() -> None:
    network = OctaNet(PAPER)
    assert 70e6 < count_parameters(network) < 73e6
    assert 80e3 < count_parameters(network.fine) < 90e3
    assert network.coarse.encoder.out_channels == (256, 512, 1024, 2048)
    assert network.coarse.encoder.stem_channels == 64


def test_lite_configuration_fits_the_cpu_budget() -> None:
    assert count_parameters(OctaNet(LITE)) <= 5_000_000


def test_encoder_feature_strides() -> None:
    encoder = OctaNet(LITE).coarse.encoder.eval()
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape[-2:]) for f in features] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    assert features.layer4.shape[1] == LITE.planes[3] * 4


def test_outputs_are_probability_maps(tiny_network: OctaNet) -> None:
    with torch.no_grad():
        out = tiny_network(torch.rand(2, 1, 64, 64))
    for tensor in out:
        assert tensor.shape == (2, 1, 64, 64)
        assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0


def test_split_attention_weights_sum_to_one_over_the_radix() -> None:
    layer = SplitAttentionConv2d(8, 8, radix=2, groups=2).eval()
    gap = torch.randn(3, layer.fc2.out_channels, 1, 1)
    weights = layer._r_softmax(gap, 3).view(3, 2, 2, -1)  # (batch, radix, cardinality, channels)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3, 2, 4))


def test_fine_stage_is_a_convex_combination_of_the_coarse_maximum() -> None:
    fine = FineNet(8).eval()
    pixel = torch.zeros(1, 1, 16, 16)
    centerline = torch.zeros(1, 1, 16, 16)
    pixel[..., 8, 8] = 1.0
    with torch.no_grad():
        out = fine(torch.rand(1, 1, 16, 16), pixel, centerline)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # only the 3x3 neighbourhood of the single lit pixel can receive any of it
    assert float(out[..., 8, 8]) > float(out[..., 7, 8]) > 0.0
    assert float(out[..., 5, 5]) == 0.0


def test_fine_stage_starts_near_the_identity() -> None:
    fine = FineNet(8).eval()
    maps = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        out = fine(torch.rand(1, 1, 32, 32), maps, maps)
    assert float((out - maps).abs().mean()) < 0.15


def test_unknown_configuration_names_the_choices() -> None:
    with pytest.raises(ValueError, match="lite"):
        get_config("huge")
    with pytest.raises(ValueError, match="unknown network settings"):
        NetworkConfig.from_dict({**LITE.to_dict(), "depth": 3})
