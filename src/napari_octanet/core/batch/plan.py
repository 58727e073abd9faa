"""Which files a batch takes, where each one's results go, and this process's share under torchrun.

Outputs mirror the inputs' folders below their common parent, so two ``scan.png`` in different
folders never share a result (nor a row name in the measures table). The tool's own outputs are
never taken as scans.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..files import ensure_writable_folder

PROBABILITY_SUFFIX = "_probability.tif"
MASK_SUFFIX = "_vessels.png"
#: A stack's mask (written by :func:`~.records.write_result`, never by a batch of files).
MASK_STACK_SUFFIX = "_vessels.tif"
OUTPUT_SUFFIXES = (PROBABILITY_SUFFIX, MASK_SUFFIX, MASK_STACK_SUFFIX)
#: The record of a scan's source file and the settings that made its results, beside them.
RECORD_SUFFIX = "_segment.json"
#: The measures table a batch writes into its output folder.
MEASURES_NAME = "measures.csv"

#: A path given as an input: a file or a folder of images.
InputPath = str | os.PathLike[str]


@dataclass(frozen=True)
class ResultPaths:
    """Where one scan's results go."""

    probability: Path
    mask: Path
    record: Path

    @classmethod
    def at(cls, folder: Path, stem: str, *, stack: bool = False) -> ResultPaths:
        mask = MASK_STACK_SUFFIX if stack else MASK_SUFFIX
        return cls(folder / f"{stem}{PROBABILITY_SUFFIX}", folder / f"{stem}{mask}", folder / f"{stem}{RECORD_SUFFIX}")

    def outputs(self) -> tuple[Path, Path]:
        return self.probability, self.mask


@dataclass(frozen=True)
class Job:
    """One input scan, its name in the measures table, and where its results go."""

    source: Path
    #: The source's path below the inputs' common parent (``a/scan.png``).
    name: str
    paths: ResultPaths


@dataclass(frozen=True)
class InputFiles:
    """The image files that inputs name, and notes on those left out."""

    files: list[Path]
    notes: list[str] = field(default_factory=list)


def find_inputs(inputs: Sequence[InputPath] | InputPath, *, masks: bool = False) -> InputFiles:
    """The image files ``inputs`` name, folders expanded; a missing path is an error naming it.

    Scans (``masks`` False): this tool's own results are left out, named or found in a folder, so an
    input folder may also be the output folder (a shell glob over it names them too); a note says
    when named files were left out. Vessel masks (``masks`` True): every file named is taken, and a
    folder gives the masks a batch wrote in it (``*_vessels.png``), or, holding none, its images
    other than probability maps.
    """
    from ..imageio import IMAGE_SUFFIXES

    given = [Path(inputs)] if isinstance(inputs, str | os.PathLike) else [Path(item) for item in inputs]
    found = InputFiles([])
    results: list[Path] = []
    for item in given:
        if item.is_dir():
            images = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found.files.extend(
                _masks_of_folder(images, found.notes) if masks else [p for p in images if not _is_result(p)]
            )
        elif not item.is_file():
            raise FileNotFoundError(f"input {item} does not exist")
        elif masks or not _is_result(item):
            found.files.append(item)
        else:
            results.append(item)
    if results:
        why = (
            f"{first_and_more(results)}: results of octanet segment, not scans (octanet measure --masks measures masks)"
        )
        if not found.files:
            raise FileNotFoundError(f"no scans among the inputs, only {why}")
        found.notes.append(f"left out {why}")
    if not found.files:
        named = ", ".join(map(str, given))
        raise FileNotFoundError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) among {named}")
    return found


def first_and_more(paths: Sequence[Path]) -> str:
    """The first path, and how many follow: how a note names the files it is about."""
    return f"{paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")


def _is_result(path: Path) -> bool:
    return path.name.endswith(OUTPUT_SUFFIXES)


def _masks_of_folder(images: list[Path], notes: list[str]) -> list[Path]:
    """The ``*_vessels.png`` among a folder's images, or every image but probability maps if there are none.

    Other images beside a batch's masks (the scans, a mask of another name) are left out with a note.
    """
    masks = [path for path in images if path.name.endswith(MASK_SUFFIX)]
    if not masks:
        return [path for path in images if not path.name.endswith(PROBABILITY_SUFFIX)]
    others = [path for path in images if not _is_result(path)]
    if others:
        notes.append(
            f"left out {first_and_more(others)}: the folder holds masks written by octanet segment "
            f"(*{MASK_SUFFIX}), and only those are taken from it; name other masks as files"
        )
    return masks


def _common_parent(files: Sequence[Path]) -> Path:
    return Path(os.path.commonpath([path.resolve().parent for path in files]))


def names_below_common_parent(files: Sequence[Path]) -> list[str]:
    """Each file's path below the files' common parent (``a/scan.png``, ``b/scan.png``): unique names."""
    root = _common_parent(files)
    return [path.resolve().relative_to(root).as_posix() for path in files]


def plan_jobs(files: Sequence[Path], out: Path) -> list[Job]:
    """Each file's results in ``out``, below the same folders as the file below the inputs' common parent.

    Two inputs that would still share a name (``scan.png`` and ``scan.tif`` side by side) keep their
    suffix in it (``scan_png_…``, ``scan_tif_…``).
    """
    names = names_below_common_parent(files)
    places = [(out / Path(name).parent, Path(name).stem) for name in names]
    jobs = []
    for path, name, (folder, stem) in zip(files, names, places, strict=True):
        if places.count((folder, stem)) > 1:
            stem = f"{stem}_{path.suffix.lstrip('.').lower()}"
        jobs.append(Job(path, name, ResultPaths.at(folder, stem)))
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


def measures_path(out: Path) -> Path:
    """Where this process's batch writes its measures table in ``out``."""
    return out / RankShare.from_environment().file_name(MEASURES_NAME)
