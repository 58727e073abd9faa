from __future__ import annotations

import pytest
import torch

from tiny_models import TINY

from napari_octanet.core.network import OctaNet


@pytest.fixture
def tiny_network() -> OctaNet:
    torch.manual_seed(0)
    return OctaNet(TINY).eval()
