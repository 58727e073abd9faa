"""Result records (``SCAN_segment.json``), what they keep and skip, and the writer of a scan's results.

Beside each scan's two results, its record keeps the source file and the settings that made them
(the model by content, threshold, speck size, TTA, precision, pixel size), the version that wrote
them and each output's digest. Results that exist are kept and their scan skipped (a long batch is
resumed by running it again) only when that record matches: results made from another file or with
other settings are refused, never kept silently. With ``overwrite`` every result that is not what
this run would write (made otherwise, by another version, edited since, or without a record) is
written again, and results that are are kept. Every file is written under a temporary name and
renamed, so a crash or a concurrent run never leaves half a file.

A record also keeps the scan's ``confidence`` and ``flags`` (``core.quality``). They are what the run
found, not how it was asked to run, so they never make a result outdated; a result kept keeps them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import write_atomically
from ..scale import describe_pixel_size
from .plan import MASK_SUFFIX, RECORD_SUFFIX, Job, ResultPaths

if TYPE_CHECKING:
    import numpy as np

    from ..quality import ScanQuality
    from ..thresholds import Threshold
    from .options import BatchOptions

#: The options whose values change a result, by their key in its record (the model is kept by content).
RESULT_OPTIONS = {
    "threshold": "--threshold",
    "speck_size": "--speck-size",
    "tta": "--tta",
    "full_precision": "--full-precision",
}
#: The record's key for the pixel size (µm) a scan was segmented at (None: unknown, taken as it is).
PIXEL_SIZE_KEY = "pixel_size_um"
#: The record's key for the digests of the outputs, by file name (written once they are).
OUTPUTS_KEY = "outputs"


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def result_settings(options: BatchOptions, threshold: Threshold, model: Path) -> dict[str, object]:
    """The settings that change a result, as its record keeps them: the model (known by its content) and
    the RESULT_OPTIONS. The batch size and the device are left out: they change the maps by rounding only.
    """
    from ... import __version__

    return {
        "model": str(model.resolve()),
        "model_sha256": file_sha256(model),
        "threshold": threshold,
        "speck_size": options.speck_size,
        "tta": options.tta,
        "full_precision": options.full_precision,
        "version": __version__,
    }


def result_record(source: Path, settings: Mapping[str, object], pixel_size_um: float | None) -> dict[str, object]:
    """What ``SCAN_segment.json`` keeps: the source file (path, size, time modified), the settings and the
    pixel size the scan was segmented at."""
    status = source.stat()
    return {
        "source": str(source.resolve()),
        "bytes": status.st_size,
        "modified_ns": status.st_mtime_ns,
        **settings,
        PIXEL_SIZE_KEY: pixel_size_um,
    }


@dataclass
class JobPlan:
    """A batch sorted by the results already there: the jobs to segment and those kept."""

    pending: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    #: Skipped or pending jobs with results but no record (written before records were): kept by name.
    unrecorded: int = 0
    #: The confidence and flags that the records of the skipped jobs keep, by source file.
    recorded_quality: dict[Path, ScanQuality] = field(default_factory=dict)


def sort_jobs(
    jobs: list[Job], settings: Mapping[str, object], pixel_size_of: Callable[[Job], float | None], *, overwrite: bool
) -> JobPlan:
    """Which jobs to segment and which results to keep; results made otherwise are refused (FileExistsError)
    unless ``overwrite``, which writes every result again that is not what this run would write.

    ``pixel_size_of`` gives a job's pixel size; a job whose scan it cannot read is segmented (and fails there).
    """
    plan = JobPlan()
    refused: list[str] = []
    for job in jobs:
        existing = [path for path in job.paths.outputs() if path.exists()]
        if not existing:
            plan.pending.append(job)
            continue
        before = _read_record(job.paths.record, overwrite)
        if before is None and overwrite:
            plan.pending.append(job)
            continue
        if before is None:
            plan.unrecorded += 1
        else:
            try:
                now = result_record(job.source, settings, pixel_size_of(job))
            except (OSError, ValueError):
                plan.pending.append(job)
                continue
            differences = _differences(before, now)
            if overwrite and (differences or not _up_to_date(before, now, job.paths)):
                plan.pending.append(job)
                continue
            if differences:
                refused.append(f"{existing[0]} was made {differences}")
                continue
        if len(existing) < len(job.paths.outputs()):
            plan.pending.append(job)
            continue
        plan.skipped.append(job)
        quality = None if before is None else recorded_quality(before)
        if quality is not None:
            plan.recorded_quality[job.source] = quality
    if refused:
        more = f" (and {len(refused) - 1} more result(s) made otherwise)" if len(refused) > 1 else ""
        raise FileExistsError(f"{refused[0]}{more}; add --overwrite to replace them, or choose another --out")
    return plan


def recorded_quality(record: Mapping[str, object]) -> ScanQuality | None:
    """The confidence and flags a record keeps (``ScanQuality.to_dict``); None where it keeps none (written
    before scans were assessed) or they are not what this version writes."""
    from ..quality import Flag, ScanQuality

    confidence, flags = record.get("confidence"), record.get("flags")
    if not isinstance(confidence, int | float) or isinstance(confidence, bool) or not isinstance(flags, list):
        return None
    try:
        return ScanQuality(float(confidence), tuple(Flag(str(flag["name"]), str(flag["reason"])) for flag in flags))
    except (KeyError, TypeError):
        return None


def quality_beside(mask: Path) -> ScanQuality | None:
    """The confidence and flags that the record beside a mask written by a batch keeps (``NAME_vessels.png``
    and ``NAME_segment.json``); None for another mask, or where the record is missing, unreadable or keeps none.
    They are those of the scan and of the mask as the batch wrote it, not of any correction made since."""
    if not mask.name.endswith(MASK_SUFFIX):
        return None
    try:
        record = json.loads(mask.with_name(mask.name.removesuffix(MASK_SUFFIX) + RECORD_SUFFIX).read_text())
    except (OSError, ValueError):
        return None
    return recorded_quality(record) if isinstance(record, dict) else None


def _read_record(path: Path, overwrite: bool) -> dict[str, object] | None:
    """A result's record, or None where there is none (results of a version before records) or, with
    ``overwrite``, where it cannot be read."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        if overwrite:
            return None
        raise ValueError(f"cannot read {path} ({error}); add --overwrite to segment its scan again") from None
    return record if isinstance(record, dict) else None


def _differences(before: Mapping[str, object], now: Mapping[str, object]) -> str:
    """How the run that made a result differs from this one, for a message ('' when it does not)."""
    said = []
    if before.get("source") != now["source"]:
        said.append(f"from {before.get('source')}")
    elif (before.get("bytes"), before.get("modified_ns")) != (now["bytes"], now["modified_ns"]):
        said.append(f"from {now['source']} before it was changed")
    if before.get("model_sha256") != now["model_sha256"]:
        same_file = before.get("model") == now["model"]
        said.append(
            f"with an earlier version of the model {now['model']}"
            if same_file
            else f"with the model {before.get('model')} (now {now['model']})"
        )
    for key, option in RESULT_OPTIONS.items():
        if before.get(key) != now[key]:
            said.append(f"with {option} {_shown(before.get(key))} (now {_shown(now[key])})")
    if before.get(PIXEL_SIZE_KEY) != now[PIXEL_SIZE_KEY]:
        was, pixel = before.get(PIXEL_SIZE_KEY), now[PIXEL_SIZE_KEY]
        said.append(f"with {describe_pixel_size(was)} (now {describe_pixel_size(pixel)})")  # type: ignore[arg-type]
    return ", ".join(said)


def _shown(value: object) -> object:
    return ("on" if value else "off") if isinstance(value, bool) else value


def _up_to_date(before: Mapping[str, object], now: Mapping[str, object], paths: ResultPaths) -> bool:
    """Whether results whose record matches this run are what it would write: by this version, and
    each output as written (not edited since)."""
    digests = before.get(OUTPUTS_KEY)
    if before.get("version") != now["version"] or not isinstance(digests, dict):
        return False
    return all(path.exists() and digests.get(path.name) == file_sha256(path) for path in paths.outputs())


def write_outputs(
    paths: ResultPaths,
    probability: np.ndarray,
    mask: np.ndarray,
    record: Mapping[str, object] | None,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write the results that are missing (all with ``overwrite``); returns the files written.

    When every result is new the record is written first (a crash then leaves results that are
    checked against it) and again with the outputs' digests once they are written. A result kept
    from an earlier run keeps that run's record (or, from an older version, none).
    """
    import numpy as np
    import tifffile
    from skimage.io import imsave

    def write_mask(tmp: Path) -> None:
        pixels = (np.asarray(mask) > 0).astype(np.uint8) * 255
        if paths.mask.suffix == ".png":
            imsave(tmp, pixels, check_contrast=False)
        else:
            tifffile.imwrite(tmp, pixels, photometric="minisblack")  # a stack: pages, not colour

    writers: dict[Path, Callable[[Path], None]] = {
        paths.probability: lambda tmp: tifffile.imwrite(
            tmp, np.asarray(probability, dtype=np.float32), photometric="minisblack"
        ),
        paths.mask: write_mask,
    }
    written = [path for path in writers if overwrite or not path.exists()]
    whole = record is not None and len(written) == len(writers)
    if whole:
        _write_record(paths.record, record)  # type: ignore[arg-type]
    for path in written:
        write_atomically(path, writers[path])
    if whole:
        _write_record(paths.record, {**record, OUTPUTS_KEY: {p.name: file_sha256(p) for p in written}})  # type: ignore[dict-item]
    return written


def _write_record(path: Path, record: Mapping[str, object]) -> None:
    text = json.dumps(record, indent=1) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text))


def write_result(
    out_dir: Path,
    name: str,
    probability: np.ndarray,
    mask: np.ndarray,
    record: Mapping[str, object] | None = None,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """Write one segmented image's results into ``out_dir`` as a batch does: ``NAME_probability.tif``
    (float32), ``NAME_vessels.png`` (0/255; a stack: ``NAME_vessels.tif``) and, with ``record``,
    ``NAME_segment.json``. Existing files are kept unless ``overwrite``; returns the files written.
    """
    paths = ResultPaths.at(Path(out_dir), name, stack=mask.ndim > 2)
    return write_outputs(paths, probability, mask, record, overwrite=overwrite)
