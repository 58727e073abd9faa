"""``octanet segment``: probability map and vessel mask for each input image.

Outputs mirror the inputs' folders below their common parent, so two ``scan.png`` in different
folders never share a result. Beside each scan's two results, ``SCAN_segment.json`` records the
source file and the settings that made them (model, threshold, speck size, TTA, precision).
Results that exist are kept and skipped (a long batch can be resumed by running the same command
again) unless ``--overwrite``, but only when that record matches: results made from another file or
with other settings are refused, never kept silently. Every file is written under a temporary name
and renamed, so a crash or a concurrent run never leaves half a file. The tool's own outputs are
never taken as scans, and a file that cannot be read or segmented is reported at the end without
stopping the batch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.files import ensure_writable_folder, write_atomically
from ..core.thresholds import DEFAULT_SPECK_SIZE
from ._common import (
    add_mask_options,
    add_model_options,
    load_model_for,
    mixed_precision_of,
    model_path_of,
    positive_int,
    report_failure,
    summarise_failures,
)
from ._errors import USER_ERRORS
from .measure import MeasureTable, add_measure_options, measures_for

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..core.checkpoint import LoadedModel
    from ..core.thresholds import Threshold

PROBABILITY_SUFFIX = "_probability.tif"
MASK_SUFFIX = "_vessels.png"
OUTPUT_SUFFIXES = (PROBABILITY_SUFFIX, MASK_SUFFIX)
#: The record of a scan's source file and the settings that made its results, beside them.
RECORD_SUFFIX = "_segment.json"


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("segment", help="segment OCTA images and write probability maps and masks")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or folders of images")
    parser.add_argument("--out", required=True, type=Path, help="folder for the outputs (mirrors the input folders)")
    add_model_options(parser)
    add_mask_options(parser, speck_size=DEFAULT_SPECK_SIZE)
    parser.add_argument("--batch-size", type=positive_int, default=4, help="slices per forward pass")
    parser.add_argument("--overwrite", action="store_true", help="rewrite results that already exist")
    add_measure_options(parser)
    parser.set_defaults(run=run)


@dataclass(frozen=True)
class Job:
    """One input image and where its two results go."""

    source: Path
    probability: Path
    mask: Path
    record: Path

    def outputs(self) -> tuple[Path, Path]:
        return self.probability, self.mask


def input_files(inputs: list[str], *, masks: bool = False) -> list[Path]:
    """The image files ``inputs`` name, folders expanded; a missing path is an error naming it.

    Scans (``masks`` False): this tool's own results (``*_probability.tif``, ``*_vessels.png``) are
    left out, named or found in a folder, so an input folder may also be ``--out`` (a shell glob
    over it names them too); a note says when named files were left out. Vessel masks (``masks``
    True): every file named is taken, and a folder gives the masks ``segment`` wrote in it
    (``*_vessels.png``), or, holding none, its images other than probability maps.
    """
    from ..core.imageio import IMAGE_SUFFIXES

    files: list[Path] = []
    results: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            files += _segment_masks(found) if masks else [p for p in found if not _is_result(p)]
        elif not item.is_file():
            raise FileNotFoundError(f"input {item} does not exist")
        elif masks or not _is_result(item):
            files.append(item)
        else:
            results.append(item)
    if results:
        why = (
            f"{_first_and_more(results)}: results of octanet segment, not scans "
            "(octanet measure --masks measures masks)"
        )
        if not files:
            raise FileNotFoundError(f"no scans among the inputs, only {why}")
        print(f"note: left out {why}", file=sys.stderr)
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) among {', '.join(inputs)}")
    return files


def _first_and_more(paths: list[Path]) -> str:
    """The first path, and how many follow: how a note names the files it is about."""
    return f"{paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")


def _is_result(path: Path) -> bool:
    return path.name.endswith(OUTPUT_SUFFIXES)


def _segment_masks(images: list[Path]) -> list[Path]:
    """The ``*_vessels.png`` among a folder's images, or every image but probability maps if there are none.

    Other images beside segment's masks (the scans, a mask of another name) are left out with a note.
    """
    masks = [path for path in images if path.name.endswith(MASK_SUFFIX)]
    if not masks:
        return [path for path in images if not path.name.endswith(PROBABILITY_SUFFIX)]
    others = [path for path in images if not _is_result(path)]
    if others:
        print(
            f"note: left out {_first_and_more(others)}: the folder holds masks written by octanet segment "
            f"(*{MASK_SUFFIX}), and only those are taken from it; name other masks as files",
            file=sys.stderr,
        )
    return masks


def plan_jobs(files: list[Path], out: Path) -> list[Job]:
    """Each file's results in ``out``, below the same folders as the file below the inputs' common parent.

    Two inputs that would still share a name (``scan.png`` and ``scan.tif`` side by side) keep their
    suffix in it (``scan_png_…``, ``scan_tif_…``).
    """
    resolved = [path.resolve() for path in files]
    root = Path(os.path.commonpath([path.parent for path in resolved]))
    places = [(out / path.parent.relative_to(root), path.stem) for path in resolved]
    jobs = []
    for path, (folder, stem) in zip(files, places, strict=True):
        if places.count((folder, stem)) > 1:
            stem = f"{stem}_{path.suffix.lstrip('.').lower()}"
        outputs = (folder / f"{stem}{suffix}" for suffix in (PROBABILITY_SUFFIX, MASK_SUFFIX, RECORD_SUFFIX))
        jobs.append(Job(path, *outputs))
    return jobs


#: The options whose values change a result, by their key in its record (the model is kept by content).
RESULT_OPTIONS = {
    "threshold": "--threshold",
    "speck_size": "--speck-size",
    "tta": "--tta",
    "full_precision": "--full-precision",
}


def result_settings(args: argparse.Namespace, threshold: Threshold, model: Path) -> dict[str, object]:
    """The settings that change a result, as its record keeps them: the model (known by its content) and
    the RESULT_OPTIONS. The batch size and the device are left out: they change the maps by rounding only.
    """
    with model.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return {
        "model": str(model.resolve()),
        "model_sha256": digest,
        "threshold": threshold,
        "speck_size": args.speck_size,
        "tta": args.tta,
        "full_precision": args.full_precision,
    }


def result_record(source: Path, settings: dict[str, object]) -> dict[str, object]:
    """What ``SCAN_segment.json`` keeps: the source file (path, size, time modified) and the settings."""
    status = source.stat()
    return {"source": str(source.resolve()), "bytes": status.st_size, "modified_ns": status.st_mtime_ns, **settings}


@dataclass
class JobPlan:
    """A batch sorted by the results already in ``--out``: the jobs to segment and those kept."""

    pending: list[Job]
    skipped: list[Job]
    #: Skipped or pending jobs with results but no record (written before records were): kept by name.
    unrecorded: int = 0


def sort_jobs(jobs: list[Job], settings: dict[str, object], *, overwrite: bool) -> JobPlan:
    """Which jobs to segment and which results to keep; results made otherwise are refused (FileExistsError).

    Results are kept only when their record names the same source file and settings, so a re-run
    resumes a batch but never passes off another scan's, model's or threshold's results as these.
    """
    plan = JobPlan([], [])
    refused: list[str] = []
    for job in jobs:
        existing = [path for path in job.outputs() if path.exists()]
        if overwrite or not existing:
            plan.pending.append(job)
            continue
        before = _read_record(job.record)
        if before is None:
            plan.unrecorded += 1
        elif differences := _differences(before, result_record(job.source, settings)):
            refused.append(f"{existing[0]} was made {differences}")
            continue
        (plan.skipped if len(existing) == len(job.outputs()) else plan.pending).append(job)
    if refused:
        more = f" (and {len(refused) - 1} more result(s) made otherwise)" if len(refused) > 1 else ""
        raise FileExistsError(f"{refused[0]}{more}; add --overwrite to replace them, or choose another --out")
    return plan


def _read_record(path: Path) -> dict[str, object] | None:
    """A result's record, or None where there is none (results of a version before records)."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} ({error}); add --overwrite to segment its scan again") from None
    return record if isinstance(record, dict) else None


def _differences(before: dict[str, object], now: dict[str, object]) -> str:
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
    return ", ".join(said)


def _shown(value: object) -> object:
    return ("on" if value else "off") if isinstance(value, bool) else value


def check_output_folder(out: Path) -> None:
    """``out`` must be a folder this process can write to; checked before any model is loaded.

    It is made by the first result written, so a batch whose every image fails leaves none.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; give a folder for the results")
    ensure_writable_folder(out, create=False)


@dataclass(frozen=True)
class RankShare:
    """This process's share of the files under ``torchrun`` (every WORLD_SIZE-th, from RANK); all of them otherwise."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> RankShare:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        return cls(rank, world_size, int(os.environ.get("LOCAL_RANK", str(rank))))

    def take(self, jobs: list[Job]) -> list[Job]:
        return jobs[self.rank :: self.world_size]

    def device(self, requested: str) -> str:
        """Each rank on its own GPU when CUDA is there and the device is 'auto' or 'cuda'."""
        import torch

        if self.world_size > 1 and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested

    def file_name(self, name: str) -> str:
        """A per-rank name for a file every rank writes (``measures-rank1.csv``)."""
        if self.world_size == 1:
            return name
        path = Path(name)
        return f"{path.stem}-rank{self.rank}{path.suffix}"


def run(args: argparse.Namespace) -> int:
    from ..core.thresholds import parse_threshold

    if args.fov_mm is not None and not args.measure:
        raise ValueError("--fov-mm sets the units of the measures table: add --measure, or leave --fov-mm out")
    threshold = parse_threshold(args.threshold)
    model = model_path_of(args)  # a mistyped --model fails here, even when every result exists already
    check_output_folder(args.out)
    share = RankShare.from_environment()
    jobs = share.take(plan_jobs(input_files(args.inputs), args.out))
    measures = measures_for(args, args.out / share.file_name("measures.csv"))
    settings = result_settings(args, threshold, model)
    plan = sort_jobs(jobs, settings, overwrite=args.overwrite)
    _say_skipped(plan, args.out, measured=measures is not None)
    failures: list[str] = []
    try:
        if measures:
            for job in plan.skipped:
                _measure_existing(measures, job, failures)
        if plan.pending:
            args.device = share.device(args.device)
            loaded, choice = load_model_for(args)
            started = time.perf_counter()
            pipeline = _Pipeline(loaded, choice.device, args, threshold, measures, settings)
            done = pipeline.run(plan.pending, failures)
            seconds = time.perf_counter() - started
            rate = f"segmented {done} image(s) in {seconds:.1f} s: {done / seconds:.2f} images/s"
            print(rate if done else "no image was segmented: each one failed", file=sys.stderr)
    except KeyboardInterrupt:
        if not measures:
            raise
        print(
            f"octanet segment: interrupted; {measures.out} was not written (the results so far are kept: "
            "run the same command again to finish the batch and measure every image)",
            file=sys.stderr,
        )
        return 130
    if measures and measures.rows:
        print(f"measures -> {measures.write()}")
    return summarise_failures(failures, len(jobs))


def _say_skipped(plan: JobPlan, out: Path, *, measured: bool) -> None:
    """One line for the results kept, and one if some of them have no record to check them by."""
    if plan.skipped:
        how = "; their masks are measured" if measured else ""
        print(
            f"{len(plan.skipped)} image(s) already have results in {out}: skipped (--overwrite rewrites them){how}",
            file=sys.stderr,
        )
    if plan.unrecorded:
        print(
            f"note: {plan.unrecorded} image(s) have results in {out} from an older version, which kept no "
            f"record ({RECORD_SUFFIX}) of the file and settings that made them: kept by name only "
            "(--overwrite rewrites them)",
            file=sys.stderr,
        )


def _measure_existing(measures: MeasureTable, job: Job, failures: list[str]) -> None:
    """Measure a skipped image from the mask an earlier run wrote, so that the table covers the whole batch."""
    from ..core.imageio import read_image, read_label

    try:
        mask = read_label(job.mask)
        scan = read_image(job.source)
    except USER_ERRORS as error:
        report_failure(job.source, error, failures)
        return
    _measure(measures, job, mask, scan, failures)


def _measure(measures: MeasureTable, job: Job, mask: np.ndarray, scan: np.ndarray, failures: list[str]) -> None:
    try:
        measures.add(job.source.name, mask, scan=scan)
    except USER_ERRORS as error:
        report_failure(job.source, error, failures)


#: Files decoded ahead of the network, results waiting to be written, and threads that decode and write.
READ_AHEAD = 8
WRITES_PENDING = 8
IO_THREADS = 2


#: One segmented image: its job, the scan, the probability map and the vessel mask.
Segmented = tuple[Job, "np.ndarray", "np.ndarray", "np.ndarray"]


class _Pipeline:
    """Decode in background threads, segment images of one size together, write in background threads."""

    def __init__(
        self,
        model: LoadedModel,
        device: torch.device,
        args: argparse.Namespace,
        threshold: Threshold,
        measures: MeasureTable | None,
        settings: dict[str, object],
    ) -> None:
        self.model, self.device, self.args, self.threshold = model, device, args, threshold
        self.measures, self.settings = measures, settings

    def run(self, jobs: list[Job], failures: list[str]) -> int:
        """Segment every job; failures are appended as 'file: reason'; returns how many succeeded."""
        from ..core.imageio import read_image

        succeeded = 0
        with ThreadPoolExecutor(IO_THREADS) as readers, ThreadPoolExecutor(IO_THREADS) as writers:
            reads = _read_ahead(readers, read_image, jobs)
            writes: deque[tuple[Job, Future[list[Path]]]] = deque()
            for group in _same_size_groups(reads, self.args.batch_size, failures):
                for job, image, probability, mask in self._segment_each(group, failures):
                    if self.measures:
                        _measure(self.measures, job, mask, image, failures)
                    writes.append((job, writers.submit(self._write, job, probability, mask)))
                # Report finished writes as they come (in order), and keep few results waiting in memory.
                while writes and (writes[0][1].done() or len(writes) > WRITES_PENDING):
                    succeeded += self._report(*writes.popleft(), failures)
            while writes:
                succeeded += self._report(*writes.popleft(), failures)
        return succeeded

    def _segment_each(self, group: list[tuple[Job, np.ndarray]], failures: list[str]) -> list[Segmented]:
        """``_segment``, but a group that fails is run again image by image, so that the image at fault
        fails alone and under its own name (a NaN pixel in one scan fails the stack it is part of)."""
        try:
            return self._segment(group)
        except USER_ERRORS as error:
            if len(group) == 1:
                report_failure(group[0][0].source, error, failures)
                return []
        return [segmented for one in group for segmented in self._segment_each([one], failures)]

    def _report(self, job: Job, write: Future[list[Path]], failures: list[str]) -> bool:
        """Wait for one image's write and say where it went; False (and a failure listed) if it failed."""
        try:
            written = write.result()
        except OSError as error:
            report_failure(job.source, error, failures)
            return False
        print(f"{job.source} -> {', '.join(str(p.relative_to(self.args.out)) for p in written)}")
        return True

    def _segment(self, group: list[tuple[Job, np.ndarray]]) -> list[Segmented]:
        """(job, image, probability, mask) for every image of a same-size group, run as one stack."""
        import numpy as np

        from ..core.inference import featureless_note, segment
        from ..core.thresholds import binarise

        stack = np.stack([image for _, image in group])
        maps = segment(
            self.model,
            stack,
            device=self.device,
            batch_size=self.args.batch_size,
            tta=self.args.tta,
            mixed_precision=mixed_precision_of(self.args),
        )
        # The stack's featureless note speaks of slices; each of them is a file here, named instead.
        stack_note = featureless_note(maps.featureless, was_2d=False)
        for note in maps.notes:
            if note != stack_note:
                print(f"warning: {note}", file=sys.stderr)
        for index in maps.featureless:
            print(f"warning: {group[index][0].source}: {featureless_note([index], was_2d=True)}", file=sys.stderr)
        return [
            (job, image, probability, binarise(probability, self.threshold, self.args.speck_size))
            for (job, image), probability in zip(group, maps.fine, strict=True)
        ]

    def _write(self, job: Job, probability: np.ndarray, mask: np.ndarray) -> list[Path]:
        """Write the results that are missing (all with --overwrite); the record first, when every one is new.

        A result kept from an earlier run keeps that run's record (or, from an older version, none).
        """
        import numpy as np
        import tifffile
        from skimage.io import imsave

        writers = {
            job.probability: lambda tmp: tifffile.imwrite(tmp, probability.astype(np.float32)),
            job.mask: lambda tmp: imsave(tmp, (mask * 255).astype(np.uint8), check_contrast=False),
        }
        written = [path for path in writers if self.args.overwrite or not path.exists()]
        if len(written) == len(writers):
            record = json.dumps(result_record(job.source, self.settings), indent=1)
            write_atomically(job.record, lambda tmp: tmp.write_text(record + "\n"))
        for path in written:
            write_atomically(path, writers[path])
        return written


def _read_ahead(
    pool: ThreadPoolExecutor, read: Callable[[Path], np.ndarray], jobs: list[Job]
) -> Iterator[tuple[Job, Future[np.ndarray]]]:
    """(job, pending read) in order, with at most READ_AHEAD reads submitted ahead of the consumer."""
    window: deque[tuple[Job, Future[np.ndarray]]] = deque()
    for job in jobs:
        window.append((job, pool.submit(read, job.source)))
        if len(window) > READ_AHEAD:
            yield window.popleft()
    yield from window


def _same_size_groups(
    reads: Iterator[tuple[Job, Future[np.ndarray]]], batch_size: int, failures: list[str]
) -> Iterator[list[tuple[Job, np.ndarray]]]:
    """Consecutive readable images of one shape, at most ``batch_size`` a group; unreadable files go to ``failures``."""
    group: list[tuple[Job, np.ndarray]] = []
    for job, future in reads:
        try:
            image = future.result()
        except USER_ERRORS as error:
            report_failure(job.source, error, failures)
            continue
        if group and (image.shape != group[0][1].shape or len(group) == batch_size):
            yield group
            group = []
        group.append((job, image))
    if group:
        yield group
