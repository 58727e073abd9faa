"""The job controls every dock shares."""

from __future__ import annotations

from napari_octanet.plugin._workers import JobControls, call_as_job


def test_a_job_without_progress_ends_with_a_full_bar(qtbot) -> None:
    controls = JobControls("Run", "Run the job", synchronous=True)
    results: list[int] = []
    errors: list[Exception] = []

    controls.start(call_as_job(lambda: 42), on_result=results.append, on_error=errors.append)

    bar = controls.progress_bar
    assert results == [42] and errors == []
    assert bar.value == bar.max >= 1
