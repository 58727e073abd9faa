"""Atomic writes and output-folder checks shared by the CLI, the checkpoints and the writers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from napari_octanet.core.files import OutputError, ensure_writable_folder, write_atomically


def test_results_are_written_atomically(tmp_path: Path) -> None:
    """A write that fails half-way leaves the earlier file as it was and no temporary file behind."""
    target = tmp_path / "scan_vessels.png"
    target.write_bytes(b"earlier result")

    def fails_half_way(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, fails_half_way)
    assert target.read_bytes() == b"earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["scan_vessels.png"]
    write_atomically(target, lambda path: path.write_bytes(b"new result"))
    assert target.read_bytes() == b"new result" and [p.name for p in tmp_path.iterdir()] == ["scan_vessels.png"]


def test_new_files_follow_the_users_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        written = write_atomically(tmp_path / "mask.png", lambda path: path.write_bytes(b"x"))
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == 0o640


def test_an_unwritable_folder_is_named_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=f"cannot write into {blocker / 'out'}"):
        ensure_writable_folder(blocker / "out")
    ensure_writable_folder(tmp_path / "new" / "folder")
    assert (tmp_path / "new" / "folder").is_dir() and not any((tmp_path / "new" / "folder").iterdir())


def test_a_folder_left_to_the_first_write_is_checked_but_not_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=f"cannot write into {blocker / 'out'}"):
        ensure_writable_folder(blocker / "out", create=False)
    ensure_writable_folder(tmp_path / "new" / "folder", create=False)
    assert list(tmp_path.iterdir()) == [blocker]
