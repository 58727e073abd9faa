"""Running core jobs off the GUI thread (or inline, for tests), and the controls that drive them.

Core jobs (segmentation, training) are generators that yield progress and return a result. A
:class:`Job` runs one in napari's thread-worker machinery, so the viewer stays responsive and
``cancel`` stops it at its next yield. With ``NAPARI_OCTANET_SYNC=1`` in the environment, or
``synchronous=True``, the same generator runs in the calling thread instead: same callbacks,
same order, no event loop needed (what the tests use).

Every callback runs on the GUI thread, so callbacks may touch layers; jobs never should. An
exception raised by a job is caught inside its generator and handed to ``on_error``: napari's
worker would otherwise show a raw traceback, and superqt drops RuntimeErrors (torch's usual
exception type) raised in a worker with nothing but a log warning.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.utils import notifications
from qtpy.QtWidgets import QSizePolicy

if TYPE_CHECKING:
    from napari.qt.threading import GeneratorWorker

SYNC_ENV = "NAPARI_OCTANET_SYNC"

logger = logging.getLogger(__name__)

Y = TypeVar("Y")
R = TypeVar("R")


class FormError(ValueError):
    """The form cannot start a run; the message says what to choose instead."""


class ProgressLike(Protocol):
    """What :class:`JobControls` shows of a yielded value (the core's ``Progress`` fits)."""

    done: int
    total: int
    message: str


def runs_synchronously(synchronous: bool | None = None) -> bool:
    """An explicit choice wins; otherwise the ``NAPARI_OCTANET_SYNC`` environment switch decides."""
    if synchronous is not None:
        return synchronous
    return os.environ.get(SYNC_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _do_nothing(*_: object) -> None:
    """Default for the optional callbacks."""


@dataclass
class JobCallbacks(Generic[Y, R]):
    """What happens on the GUI thread as a job runs; exactly one of result, error or cancelled fires."""

    on_result: Callable[[R], None]
    on_error: Callable[[Exception], None]
    on_progress: Callable[[Y], None] = field(default=_do_nothing)
    on_cancelled: Callable[[], None] = field(default=_do_nothing)
    #: Always last, whatever the outcome.
    on_finished: Callable[[], None] = field(default=_do_nothing)


@dataclass(frozen=True)
class _Failed:
    error: Exception


def _guarded(job: Generator[Y, None, R]) -> Generator[Y, None, R | _Failed]:
    """Turn an exception raised by the job into a returned value (see the module docstring)."""
    try:
        return (yield from job)
    except Exception as error:  # noqa: BLE001 - every failure must reach the user as a notification
        return _Failed(error)


def call_as_job(function: Callable[[], R]) -> Generator[None, None, R]:
    """A plain call as a job without progress, for work such as probing devices off the GUI thread."""
    yield from ()
    return function()


#: Threaded jobs that have not finished. Qt holds bound-method slots only weakly, so without
#: this a job started and dropped by its caller would vanish and never call back.
_running_jobs: set[Job[object, object]] = set()


class Job(Generic[Y, R]):
    """One run of a progress generator; :meth:`cancel` stops it at its next yield."""

    def __init__(self, job: Generator[Y, None, R], callbacks: JobCallbacks[Y, R], *, synchronous: bool | None = None):
        self._job = job
        self._callbacks = callbacks
        self._synchronous = runs_synchronously(synchronous)
        self._worker: GeneratorWorker | None = None
        self._cancel_requested = False
        self._delivered = False
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        self._running = True
        if self._synchronous:
            self._run_inline()
            return
        from napari.qt.threading import create_worker

        worker = create_worker(_guarded, self._job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._progress)
        worker.returned.connect(self._deliver)
        worker.finished.connect(self._finish)
        self._worker = worker
        _running_jobs.add(self)
        worker.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next yield; nothing is delivered but ``on_cancelled``."""
        self._cancel_requested = True
        if self._worker is not None:
            self._worker.quit()

    def abandon(self) -> None:
        """Cancel and drop every callback, for when the widget that owns the job is being destroyed."""
        self._callbacks = JobCallbacks(on_result=_do_nothing, on_error=_do_nothing)
        self.cancel()

    def _run_inline(self) -> None:
        guarded = _guarded(self._job)
        try:
            while not self._cancel_requested:
                self._progress(next(guarded))
        except StopIteration as stop:
            self._deliver(stop.value)
        self._finish()

    def _progress(self, value: Y) -> None:
        """Looked up at each call, so that :meth:`abandon` also silences progress already queued."""
        self._callbacks.on_progress(value)

    def _deliver(self, outcome: R | _Failed) -> None:
        """Hand the result over; a failure in the result handler itself (say, writing layers) is an error too."""
        self._delivered = True
        if isinstance(outcome, _Failed):
            self._callbacks.on_error(outcome.error)
            return
        try:
            self._callbacks.on_result(outcome)
        except Exception as error:  # noqa: BLE001 - see the docstring
            self._callbacks.on_error(error)

    def _finish(self) -> None:
        self._running = False
        _running_jobs.discard(self)
        # A threaded job can also end cancelled after its last yield (superqt then emits neither
        # 'returned' nor 'aborted'), so "nothing was delivered" is what defines a cancelled job.
        if not self._delivered:
            self._job.close()
            self._callbacks.on_cancelled()
        self._callbacks.on_finished()


def describe_failure(action: str, error: Exception) -> str:
    """A one-paragraph message for a notification: the core's own words, never a traceback.

    The core's own errors (bad input, missing models and devices, memory, files) carry messages for
    users; anything else, a bare RuntimeError from torch included, is reported as a bug.
    """
    from napari_octanet.core.devices import DeviceError  # imports torch: only once a job has failed

    if isinstance(error, ValueError | LookupError | DeviceError | MemoryError | OSError) and not isinstance(
        error, KeyError
    ):
        return f"{action} failed: {error}"
    return (
        f"{action} failed unexpectedly ({type(error).__name__}: {error}). The full error is in the "
        "terminal's log; please report it to napari-octanet."
    )


def notify_failure(action: str, error: Exception) -> None:
    """Show a failed job as a napari error notification and keep its traceback in the log."""
    logger.warning("%s failed", action, exc_info=error)
    notifications.show_error(describe_failure(action, error))


#: Words longer than this may be broken anywhere (a word this long fits any dock's width).
LONGEST_UNBROKEN_WORD = 20
#: Where a line may break without showing anything (Qt's word wrap honours it).
ZERO_WIDTH_SPACE = "\u200b"


def breakable(text: str) -> str:
    """``text`` with a break allowed after every character of each word longer than :data:`LONGEST_UNBROKEN_WORD`."""
    return re.sub(rf"\S{{{LONGEST_UNBROKEN_WORD + 1},}}", lambda word: ZERO_WIDTH_SPACE.join(word.group()), text)


class WrappingLabel(Label):
    """A label whose text wraps within whatever width its dock gives it, a long name or path too.

    Qt's word wrap cannot break a word, and a label asks to be as wide as its longest word: a status
    line holding a long layer name or path widened its dock, squeezing the canvas. This label asks for
    no width of its own, and its text holds invisible break points in long words (its ``value`` is the
    text without them).
    """

    def get_value(self) -> str:
        return str(super().get_value()).replace(ZERO_WIDTH_SPACE, "")

    def set_value(self, value: object) -> None:
        super().set_value(breakable(str(value)))


def wrapping_label(text: str, name: str = "") -> WrappingLabel:
    """A :class:`WrappingLabel` without a caption that fills the width (magicgui's labels are fixed-size)."""
    label = WrappingLabel(value=text, name=name)
    label.label = ""
    label.native.setWordWrap(True)
    # Ignored: the dock's width leaves the label's own hint (its longest line, up to 80 characters) out.
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


class JobControls(Container):
    """A run button, a Cancel button, a progress bar and a status line, for one job at a time.

    The owner connects ``run_button.changed`` to a handler that validates its form and calls
    :meth:`start`; these controls handle busy state, progress, cancelling and the status line.
    """

    def __init__(self, run_text: str, run_tooltip: str, *, synchronous: bool | None = None) -> None:
        self.run_button = PushButton(text=run_text, tooltip=run_tooltip)
        self.cancel_button = PushButton(
            text="Cancel", tooltip="Stop at the end of the current step; nothing is written", enabled=False
        )
        buttons = Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False)
        buttons.margins = (0, 0, 0, 0)
        self.progress_bar = ProgressBar(value=0, min=0, max=1, tooltip="Progress of the current job")
        self.status = wrapping_label("")
        super().__init__(widgets=[buttons, self.progress_bar, self.status], labels=False)
        self.margins = (0, 0, 0, 0)
        self._synchronous = synchronous
        self._job: Job[ProgressLike, object] | None = None
        self.cancel_button.changed.connect(self.cancel)

    @property
    def running(self) -> bool:
        return self._job is not None and self._job.running

    def start(
        self,
        job: Generator[ProgressLike, None, R],
        on_result: Callable[[R], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        """Run ``job`` (threaded unless synchronous) with progress shown here; one job at a time."""
        if self.running:
            raise RuntimeError("a job is already running; cancel it or wait for it to finish")
        callbacks: JobCallbacks[ProgressLike, R] = JobCallbacks(
            on_result=functools.partial(self._on_result, on_result),
            on_error=on_error,
            on_progress=self.show_progress,
            on_cancelled=lambda: self.show_status("Cancelled; nothing was written."),
            on_finished=lambda: self._set_busy(False),
        )
        self._set_busy(True)
        self.progress_bar.value = 0
        self.show_status("Starting…")
        self._job = Job(job, callbacks, synchronous=self._synchronous)  # type: ignore[arg-type]
        self._job.start()

    def cancel(self) -> None:
        if self.running:
            self.cancel_button.enabled = False
            self.show_status("Cancelling at the end of the current step…")
            self._job.cancel()  # type: ignore[union-attr]

    def abandon(self) -> None:
        """Stop any job without further callbacks (the widgets are going away)."""
        if self._job is not None:
            self._job.abandon()

    def ends_in_full(self, result: object) -> bool:
        """Whether the bar ends full when the job delivers ``result``: a job that delivers its result is done
        (subclasses whose jobs deliver a result after stopping part-way say otherwise)."""
        return True

    def _on_result(self, on_result: Callable[[R], None], result: R) -> None:
        """Fill the bar (a job without progress, such as :func:`call_as_job`'s, never moved it), then hand over."""
        if self.ends_in_full(result):
            self.progress_bar.max = max(self.progress_bar.max, 1)
            self.progress_bar.value = self.progress_bar.max
        on_result(result)

    def show_progress(self, progress: ProgressLike) -> None:
        """A total of 0 means "unknown": the bar then shows a busy animation."""
        self.progress_bar.max = max(progress.total, 0)
        self.progress_bar.value = min(progress.done, progress.total)
        if progress.message:
            self.show_status(progress.message[:1].upper() + progress.message[1:])

    def show_status(self, text: str, tooltip: str = "") -> None:
        self.status.value = text
        self.status.tooltip = tooltip or text

    def _set_busy(self, busy: bool) -> None:
        self.run_button.enabled = not busy
        self.cancel_button.enabled = busy
        if not busy:
            self.progress_bar.max = max(self.progress_bar.max, 1)
