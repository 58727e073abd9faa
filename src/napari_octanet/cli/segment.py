"""``octanet segment``: probability map and vessel mask for each input image.

Outputs mirror the inputs' folders below their common parent, so two ``scan.png`` in different
folders never share a result. Results that exist are kept and skipped (a long batch can be
resumed by running the same command again) unless ``--overwrite``; every file is written under a
temporary name and renamed, so a crash or a concurrent run never leaves half a file. The tool's
own outputs are never taken as inputs, and a file that cannot be read or segmented is reported
at the end without stopping the batch.
"""

from __future__ import annotations

import argparse
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

    def outputs(self) -> tuple[Path, Path]:
        return self.probability, self.mask


def input_files(inputs: list[str]) -> list[Path]:
    """Expand folders to the image files they hold, leaving out this tool's own results.

    Files named like a result (``*_probability.tif``, ``*_vessels.png``) are never inputs, so an
    input folder may also be ``--out``. A missing path is an error naming it.
    """
    from ..core.imageio import IMAGE_SUFFIXES

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"input {item} does not exist")
    files = [path for path in files if not path.name.endswith(OUTPUT_SUFFIXES)]
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) among {', '.join(inputs)}")
    return files


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
        jobs.append(Job(path, folder / f"{stem}{PROBABILITY_SUFFIX}", folder / f"{stem}{MASK_SUFFIX}"))
    return jobs


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

    threshold = parse_threshold(args.threshold)
    model_path_of(args)  # a mistyped --model fails here, even when every result exists already
    check_output_folder(args.out)
    share = RankShare.from_environment()
    jobs = share.take(plan_jobs(input_files(args.inputs), args.out))
    measures = measures_for(args, args.out / share.file_name("measures.csv"))
    pending = [job for job in jobs if args.overwrite or not all(p.exists() for p in job.outputs())]
    if len(pending) < len(jobs):
        print(
            f"{len(jobs) - len(pending)} image(s) already have results in {args.out}: skipped "
            "(--overwrite rewrites them)",
            file=sys.stderr,
        )
    failures: list[str] = []
    if pending:
        args.device = share.device(args.device)
        model, choice = load_model_for(args)
        started = time.perf_counter()
        done = _Pipeline(model, choice.device, args, threshold, measures).run(pending, failures)
        seconds = time.perf_counter() - started
        print(f"segmented {done} image(s) in {seconds:.1f} s: {done / seconds:.2f} images/s", file=sys.stderr)
    if measures and measures.rows:
        print(f"measures -> {measures.write()}")
    if failures:
        print(f"{len(failures)} of {len(jobs)} image(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


#: Files decoded ahead of the network, results waiting to be written, and threads that decode and write.
READ_AHEAD = 8
WRITES_PENDING = 8
IO_THREADS = 2


class _Pipeline:
    """Decode in background threads, segment images of one size together, write in background threads."""

    def __init__(
        self,
        model: LoadedModel,
        device: torch.device,
        args: argparse.Namespace,
        threshold: Threshold,
        measures: MeasureTable | None,
    ) -> None:
        self.model, self.device, self.args, self.threshold, self.measures = model, device, args, threshold, measures

    def run(self, jobs: list[Job], failures: list[str]) -> int:
        """Segment every job; failures are appended as 'file: reason'; returns how many succeeded."""
        from ..core.imageio import read_image

        succeeded = 0
        with ThreadPoolExecutor(IO_THREADS) as readers, ThreadPoolExecutor(IO_THREADS) as writers:
            reads = _read_ahead(readers, read_image, jobs)
            writes: deque[tuple[Job, Future[list[Path]]]] = deque()
            for group in _same_size_groups(reads, self.args.batch_size, failures):
                try:
                    writes += [(job, writers.submit(self._write, job, *maps)) for job, maps in self._segment(group)]
                except USER_ERRORS as error:
                    for job, _ in group:
                        _fail(job, error, failures)
                # Report finished writes as they come (in order), and keep few results waiting in memory.
                while writes and (writes[0][1].done() or len(writes) > WRITES_PENDING):
                    succeeded += self._report(*writes.popleft(), failures)
            while writes:
                succeeded += self._report(*writes.popleft(), failures)
        return succeeded

    def _report(self, job: Job, write: Future[list[Path]], failures: list[str]) -> bool:
        """Wait for one image's write and say where it went; False (and a failure listed) if it failed."""
        try:
            written = write.result()
        except OSError as error:
            _fail(job, error, failures)
            return False
        print(f"{job.source} -> {', '.join(str(p.relative_to(self.args.out)) for p in written)}")
        return True

    def _segment(self, group: list[tuple[Job, np.ndarray]]) -> list[tuple[Job, tuple[np.ndarray, np.ndarray]]]:
        """(job, (probability, mask)) for every image of a same-size group, run as one stack."""
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
        results = []
        for (job, image), probability in zip(group, maps.fine, strict=True):
            mask = binarise(probability, self.threshold, self.args.speck_size)
            if self.measures:
                self.measures.add(job.source.name, mask, scan=image)
            results.append((job, (probability, mask)))
        return results

    def _write(self, job: Job, probability: np.ndarray, mask: np.ndarray) -> list[Path]:
        import numpy as np
        import tifffile
        from skimage.io import imsave

        writers = {
            job.probability: lambda tmp: tifffile.imwrite(tmp, probability.astype(np.float32)),
            job.mask: lambda tmp: imsave(tmp, (mask * 255).astype(np.uint8), check_contrast=False),
        }
        written = [path for path in writers if self.args.overwrite or not path.exists()]
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
        except USER_ERRORS + (OSError,) as error:
            _fail(job, error, failures)
            continue
        if group and (image.shape != group[0][1].shape or len(group) == batch_size):
            yield group
            group = []
        group.append((job, image))
    if group:
        yield group


def _fail(job: Job, error: BaseException, failures: list[str]) -> None:
    """Report a failed image now and keep it for the summary, naming its file once."""
    text = str(error) if str(job.source) in str(error) else f"{job.source}: {error}"
    failures.append(text)
    print(f"error: {text}", file=sys.stderr)
