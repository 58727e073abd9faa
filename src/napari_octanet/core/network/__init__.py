"""The OCTA-Net network: ResNeSt encoder, SCS decoders, SRS fine stage, named configurations."""

from .config import CONFIGS, LITE, PAPER, NetworkConfig, get_config
from .octanet import OctaNet, OctaNetOutput, count_parameters

__all__ = ["CONFIGS", "LITE", "PAPER", "NetworkConfig", "OctaNet", "OctaNetOutput", "count_parameters", "get_config"]
