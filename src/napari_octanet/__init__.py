"""napari-octanet: OCTA-Net retinal vessel segmentation for OCT-angiography, as a napari plugin."""

__version__ = "0.1.0"
