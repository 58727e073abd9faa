"""Running a batch: every check before any work, then scans decoded ahead in background threads,
segmented in stacks of one size and pixel size, and assessed (confidence and flags, ``core.quality``)
and written in background threads, so that the checks overlap the network's work.

:func:`iter_segment_folder` yields :class:`~.options.BatchEvent` progress (with what to tell the
user) and returns a :class:`~.options.BatchReport`; a file that cannot be read, segmented, measured
or written is listed in the report without stopping the batch. :func:`segment_folder` runs it to
the end.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..files import failure_line
from ..progress import Progress, run_to_end
from .options import BatchEvent, BatchOptions, BatchReport, EventKind, ModelSpec
from .plan import RECORD_SUFFIX, InputPath, Job, RankShare, check_output_folder, find_inputs, measures_path, plan_jobs
from .records import JobPlan, result_record, result_settings, sort_jobs, write_outputs
from .table import MeasureTable

if TYPE_CHECKING:
    import numpy as np

    from ..checkpoint import LoadedModel
    from ..devices import DeviceChoice
    from ..inference import Segmentation
    from ..quality import ScanQuality
    from ..thresholds import Threshold

#: Files decoded ahead of the network, results waiting to be written, and threads that decode and write.
READ_AHEAD = 8
WRITES_PENDING = 8
IO_THREADS = 2
#: What makes one file of a batch fail (the file is listed and the batch goes on).
FILE_ERRORS = (OSError, MemoryError, ValueError)


def segment_folder(
    inputs: Sequence[InputPath] | InputPath, out_dir: InputPath, options: BatchOptions | None = None
) -> BatchReport:
    """Run :func:`iter_segment_folder` to the end in the calling thread."""
    return run_to_end(iter_segment_folder(inputs, out_dir, options))


def iter_segment_folder(
    inputs: Sequence[InputPath] | InputPath, out_dir: InputPath, options: BatchOptions | None = None
) -> Generator[Progress, None, BatchReport]:
    """Segment the scans ``inputs`` name (files, or folders of images) into ``out_dir``.

    Everything that can be refused is refused before any work (a bad option, model, device, output
    folder or measures table, results made otherwise), as a one-line error. Then the results that
    are up to date are kept, the other scans are segmented, and with ``options.measure`` every mask
    is measured into ``measures.csv`` in ``out_dir``.
    """
    batch = _Batch(Path(out_dir), options or BatchOptions())
    plan = batch.prepare(inputs)
    yield from batch.drain()
    return (yield from batch.run(plan))


def model_file(model: ModelSpec | LoadedModel) -> Path:
    """The checkpoint file a model is (a name through the registry; a ModelNotFoundError listing the known ones)."""
    from ..registry import registry

    if model is None or isinstance(model, str | os.PathLike):
        return registry.resolve(model)  # type: ignore[arg-type]
    return Path(model.source)


def load_model_on(
    model: ModelSpec | LoadedModel, choice: DeviceChoice, mixed_precision: bool | None
) -> tuple[LoadedModel, str]:
    """The model loaded on the chosen device (one loaded already as it is), and the log line naming it,
    the device and the precision."""
    from ..checkpoint import LoadedModel, load_model
    from ..devices import precision_name, uses_fast_precision

    path = model_file(model)
    loaded = model if isinstance(model, LoadedModel) else load_model(path, choice.device)
    precision = precision_name(choice.device, uses_fast_precision(mixed_precision))
    return loaded, f"model: {path} ({loaded.info.network.name}); device: {choice}; {precision}"


class _Written(NamedTuple):
    """What a writer thread did with one scan: its confidence and flags, and the files it wrote."""

    quality: ScanQuality
    files: list[Path]


@dataclass(frozen=True)
class _Scan:
    """A scan read for the network: its job, pixels and pixel size (µm, or None: unknown)."""

    job: Job
    image: np.ndarray
    pixel_size_um: float | None


class _Batch:
    """One batch's checks, events and report; :class:`_Pipeline` does its segmenting."""

    def __init__(self, out: Path, options: BatchOptions) -> None:
        self.out, self.options = out, options
        self.events: deque[BatchEvent] = deque()
        self.report = BatchReport(0)
        self.done = 0
        self.table: MeasureTable | None = None

    def say(self, kind: EventKind, message: str) -> None:
        self.events.append(BatchEvent(self.done, self.report.scans, message, kind))

    def fail(self, path: Path, error: BaseException) -> None:
        """List a file that failed (its scan is done with only where the caller says so)."""
        line = failure_line(path, error)
        self.report.failures.append(line)
        self.say("failure", line)

    def drain(self) -> Iterator[BatchEvent]:
        while self.events:
            yield self.events.popleft()

    def prepare(self, inputs: Sequence[InputPath] | InputPath) -> JobPlan:
        """Every check before any work; the jobs sorted into those to segment and those kept."""
        from ..devices import resolve_device
        from ..thresholds import parse_speck_size, parse_threshold

        options = self.options
        self.threshold: Threshold = parse_threshold(options.threshold)
        parse_speck_size(options.speck_size)
        options.pixel_sizes.check()
        if options.batch_size < 1:
            raise ValueError(f"batch size {options.batch_size} must be at least 1")
        model = model_file(options.model)  # a mistyped model fails here, even when every result exists already
        check_output_folder(self.out)
        share = RankShare.from_environment()
        self.device = resolve_device(share.device(options.device))  # so is a device this machine lacks
        found = find_inputs(inputs)
        for note in found.notes:
            self.say("note", note)
        jobs = share.take(plan_jobs(found.files, self.out))
        self.report.scans = len(jobs)
        if options.measure:
            self.table = MeasureTable.checked(measures_path(self.out), overwrite=options.overwrite)
        self.settings = result_settings(options, self.threshold, model)
        plan = sort_jobs(jobs, self.settings, self._pixel_size_of_job, overwrite=options.overwrite)
        self._say_skipped(plan)
        return plan

    def _pixel_size_of_job(self, job: Job) -> float | None:
        """A job's pixel size, reading its scan only where the size depends on its width."""
        from ..imageio import read_image

        rule = self.options.pixel_sizes
        return rule.of(job.source, read_image(job.source).shape[1] if rule.needs_width(job.source) else None)

    def _say_skipped(self, plan: JobPlan) -> None:
        """One line for the results kept, and one if some of them have no record to check them by."""
        self.report.skipped = len(plan.skipped)
        if plan.skipped:
            why = "up to date" if self.options.overwrite else "--overwrite rewrites those not up to date"
            how = "; their masks are measured" if self.table else ""
            self.say("info", f"{len(plan.skipped)} image(s) already have results in {self.out}: skipped ({why}){how}")
        if plan.unrecorded:
            self.say(
                "note",
                f"{plan.unrecorded} image(s) have results in {self.out} from an older version, which kept no "
                f"record ({RECORD_SUFFIX}) of the file and settings that made them: kept by name only "
                "(--overwrite rewrites them)",
            )

    def run(self, plan: JobPlan) -> Generator[BatchEvent, None, BatchReport]:
        self.report.quality.update(plan.recorded_quality)
        for job in plan.skipped if self.table else []:
            self._measure_existing(job, plan.recorded_quality.get(job.source))
            yield from self.drain()
        self.done += len(plan.skipped)
        if plan.pending:
            model, line = load_model_on(self.options.model, self.device, self.options.mixed_precision)
            self.say("info", line)
            started = time.perf_counter()
            self.report.attempted = len(plan.pending)
            pipeline = _Pipeline(self, model)
            self.report.segmented = yield from pipeline.run(plan.pending)
            self.report.seconds = time.perf_counter() - started
        if self.table and self.table.rows:
            self.report.measures = self.table.write()
        if self.table:
            self.report.without_faz = list(self.table.without_faz)
        yield from self.drain()
        return self.report

    def _measure_existing(self, job: Job, quality: ScanQuality | None) -> None:
        """Measure a skipped scan from the mask an earlier run wrote, so that the table covers the whole batch;
        its row keeps the ``quality`` that run recorded."""
        from ..imageio import read_image, read_label

        try:
            mask = read_label(job.paths.mask)
            scan = read_image(job.source)
        except FILE_ERRORS as error:
            self.fail(job.source, error)
            return
        self.measure(_Scan(job, scan, self.options.pixel_sizes.of(job.source, scan.shape[1])), mask, quality)

    def measure(self, scan: _Scan, mask: np.ndarray, quality: ScanQuality | None = None) -> None:
        assert self.table is not None
        try:
            _, notes = self.table.add(
                scan.job.name, mask, scan=scan.image, pixel_size_um=scan.pixel_size_um, quality=quality
            )
        except FILE_ERRORS as error:
            self.fail(scan.job.source, error)
            return
        for note in notes:
            self.say("warning", f"{scan.job.name}: {note}")


class _Pipeline:
    """Decode in background threads, segment scans of one size together, assess and write in background threads."""

    def __init__(self, batch: _Batch, model: LoadedModel) -> None:
        from ..quality import model_calibration

        self.batch, self.model, self.options = batch, model, batch.options
        self.calibration = model_calibration(model.info.provenance)
        #: Notes of the network said once per batch (a move to the CPU, a resampling), not once per stack.
        self.said: set[str] = set()

    def run(self, jobs: list[Job]) -> Generator[BatchEvent, None, int]:
        """Segment every job, failures listed in the batch; returns how many were written."""
        from ..imageio import read_image

        succeeded = 0
        with ThreadPoolExecutor(IO_THREADS) as readers, ThreadPoolExecutor(IO_THREADS) as writers:
            writes: deque[tuple[Job, Future[_Written]]] = deque()
            for group in self._groups(_read_ahead(readers, read_image, jobs)):
                yield from self.batch.drain()
                for scan, maps, mask in self._segment_each(group):
                    if self.batch.table:
                        self.batch.measure(scan, mask)
                    writes.append((scan.job, writers.submit(self._assess_and_write, scan, maps, mask)))
                # Report finished writes as they come (in order), and keep few results waiting in memory.
                while writes and (writes[0][1].done() or len(writes) > WRITES_PENDING):
                    succeeded += self._report(*writes.popleft())
                yield from self.batch.drain()
            while writes:
                succeeded += self._report(*writes.popleft())
                yield from self.batch.drain()
        return succeeded

    def _groups(self, reads: Iterator[tuple[Job, Future[np.ndarray]]]) -> Iterator[list[_Scan]]:
        """Consecutive readable scans of one shape and pixel size, at most a batch a group; unreadable files fail.

        A pixel size and a field of view that disagree for a scan stop the batch (a ValueError): the
        same mistake would fail every scan.
        """
        group: list[_Scan] = []
        for job, future in reads:
            try:
                image = future.result()
            except FILE_ERRORS as error:
                self.batch.fail(job.source, error)
                self.batch.done += 1
                continue
            scan = _Scan(job, image, self.options.pixel_sizes.of(job.source, image.shape[1]))
            if group and (
                (image.shape, scan.pixel_size_um) != (group[0].image.shape, group[0].pixel_size_um)
                or len(group) == self.options.batch_size
            ):
                yield group
                group = []
            group.append(scan)
        if group:
            yield group

    def _segment_each(self, group: list[_Scan]) -> list[tuple[_Scan, Segmentation, np.ndarray]]:
        """``_segment``, but a group that fails is run again scan by scan, so that the scan at fault
        fails alone and under its own name (a NaN pixel in one scan fails the stack it is part of)."""
        try:
            return self._segment(group)
        except FILE_ERRORS as error:
            if len(group) == 1:
                self.batch.fail(group[0].job.source, error)
                self.batch.done += 1
                return []
        return [segmented for one in group for segmented in self._segment_each([one])]

    def _segment(self, group: list[_Scan]) -> list[tuple[_Scan, Segmentation, np.ndarray]]:
        """(scan, its maps, its mask) for every scan of a group, run as one stack."""
        import numpy as np

        from ..inference import featureless_note
        from ..quality import slice_of
        from .scan import segment_scan

        result = segment_scan(
            self.model,
            np.stack([scan.image for scan in group]),
            threshold=self.batch.threshold,
            speck_size=self.options.speck_size,
            pixel_size_um=group[0].pixel_size_um,
            device=self.batch.device.device,
            batch_size=self.options.batch_size,
            tta=self.options.tta,
            mixed_precision=self.options.mixed_precision,
        )
        # The stack's featureless note speaks of slices; each of them is a file here, named instead.
        stack_note = featureless_note(result.featureless, was_2d=False)
        for note in result.notes:
            if note != stack_note and note not in self.said:
                self.said.add(note)
                self.batch.say("warning", note)
        for index in result.featureless:
            self.batch.say("warning", f"{group[index].job.source}: {featureless_note([index], was_2d=True)}")
        masks: np.ndarray = result.mask  # type: ignore[assignment]
        return [(scan, slice_of(result, index), masks[index]) for index, scan in enumerate(group)]

    def _assess_and_write(self, scan: _Scan, maps: Segmentation, mask: np.ndarray) -> _Written:
        """Assess one scan (in a writer thread) and write its results, its record keeping what was found."""
        from ..quality import assess

        quality = assess(maps, scan.image, self.calibration)[0]
        record = {**result_record(scan.job.source, self.batch.settings, scan.pixel_size_um), **quality.to_dict()}
        return _Written(
            quality, write_outputs(scan.job.paths, maps.fine, mask, record, overwrite=self.options.overwrite)
        )

    def _report(self, job: Job, write: Future[_Written]) -> bool:
        """Wait for one scan's assessment and write and say where it went; False (and a failure listed) if
        either failed."""
        self.batch.done += 1
        try:
            quality, written = write.result()
        except FILE_ERRORS as error:
            self.batch.fail(job.source, error)
            return False
        self.batch.report.quality[job.source] = quality
        if self.batch.table:
            self.batch.table.quality[job.name] = quality
        self.batch.say("written", f"{job.source} -> {', '.join(str(p.relative_to(self.batch.out)) for p in written)}")
        return True


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
