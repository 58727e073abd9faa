"""OCTA measurements: vessel density, length, calibre, branching, tortuosity, fractal dimension, FAZ.

Qt-free. :func:`measure_scan` turns one vessel mask (with, optionally, the scan, a pixel size and
a FAZ) into one record per region (the whole scan and ETDRS rings); :func:`iter_measure` does a
batch as a progress generator. Definitions and sources are in docs/measurements.md.
"""

from .faz import FazMeasures, FazResult, faz_measures, find_faz
from .records import (
    FAZ_COLUMNS,
    MAX_MASK_VALUES,
    VESSEL_COLUMNS,
    FazSource,
    MeasureJob,
    RegionRecord,
    ScanMeasures,
    as_mask,
    iter_measure,
    measure_scan,
    write_csv,
)
from .regions import ETDRS_RINGS, Ring, etdrs_rings
from .units import Units, check_fov, check_pixel_size, pixel_size_from_fov, pixel_size_from_layer_scale
from .vessels import VesselMeasures, box_counting_dimension

__all__ = [
    "ETDRS_RINGS",
    "FAZ_COLUMNS",
    "MAX_MASK_VALUES",
    "VESSEL_COLUMNS",
    "FazMeasures",
    "FazResult",
    "FazSource",
    "MeasureJob",
    "RegionRecord",
    "Ring",
    "ScanMeasures",
    "Units",
    "VesselMeasures",
    "as_mask",
    "box_counting_dimension",
    "check_fov",
    "check_pixel_size",
    "etdrs_rings",
    "faz_measures",
    "find_faz",
    "iter_measure",
    "measure_scan",
    "pixel_size_from_fov",
    "pixel_size_from_layer_scale",
    "write_csv",
]
