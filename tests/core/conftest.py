from __future__ import annotations

import pytest
import torch

from napari_octanet.core.network import NetworkConfig, OctaNet

TINY = NetworkConfig(name="tiny", blocks=(1, 1, 1, 1), planes=(4, 8, 8, 8), stem_width=4, head_width=4, fine_width=4)


@pytest.fixture
def tiny_network() -> OctaNet:
    torch.manual_seed(0)
    return OctaNet(TINY).eval()
