"""A network small enough for tests to train and run in well under a second."""

from napari_octanet.core.network import NetworkConfig

TINY = NetworkConfig(name="tiny", blocks=(1, 1, 1, 1), planes=(4, 8, 8, 8), stem_width=4, head_width=4, fine_width=4)
