"""Segmenting a cohort: folders of scans in, probability maps, vessel masks, records and measures out.

The whole job of ``octanet segment``, for scripts and notebooks too: :func:`iter_segment_folder`
(a progress generator) or :func:`segment_folder` (to the end) with :class:`BatchOptions`.
:mod:`.plan` says which files and where their results go, :mod:`.records` what is kept, skipped or
refused (``SCAN_segment.json``) and writes results (:func:`write_result`, also for the Segment dock),
:mod:`.table` gathers the measures, :mod:`.runner` runs it with read-ahead and write threads, and
under ``torchrun`` each process takes its share.
"""

from .options import BatchEvent, BatchOptions, BatchReport, to_check_first
from .plan import (
    MASK_SUFFIX,
    MEASURES_NAME,
    OUTPUT_SUFFIXES,
    PROBABILITY_SUFFIX,
    RECORD_SUFFIX,
    InputFiles,
    Job,
    ResultPaths,
    find_inputs,
    first_and_more,
    measures_path,
    names_below_common_parent,
    plan_jobs,
)
from .records import result_record, result_settings, write_result
from .runner import iter_segment_folder, load_model_on, model_file, segment_folder
from .table import MeasureTable, quality_cells

__all__ = [
    "MASK_SUFFIX",
    "MEASURES_NAME",
    "OUTPUT_SUFFIXES",
    "PROBABILITY_SUFFIX",
    "RECORD_SUFFIX",
    "BatchEvent",
    "BatchOptions",
    "BatchReport",
    "InputFiles",
    "Job",
    "MeasureTable",
    "ResultPaths",
    "find_inputs",
    "first_and_more",
    "iter_segment_folder",
    "load_model_on",
    "measures_path",
    "model_file",
    "names_below_common_parent",
    "plan_jobs",
    "quality_cells",
    "result_record",
    "result_settings",
    "segment_folder",
    "to_check_first",
    "write_result",
]
