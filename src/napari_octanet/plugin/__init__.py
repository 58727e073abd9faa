"""napari adapters (reader, sample data, widgets) over :mod:`napari_octanet.core`."""
