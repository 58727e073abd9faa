from __future__ import annotations

import pytest
import torch

from napari_octanet.core.network import OctaNet
from tiny_models import TINY


@pytest.fixture
def tiny_network() -> OctaNet:
    torch.manual_seed(0)
    return OctaNet(TINY).eval()
