"""What ``octanet train`` shows while it runs (a progress bar per stage), and SIGTERM taken as Ctrl-C."""

from __future__ import annotations

import signal
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.training.trainer import TrainEvent, TrainResult


@contextmanager
def stopping_on(signum: signal.Signals, received: list[signal.Signals]) -> Iterator[None]:
    """Treat ``signum`` as Ctrl-C, so that the run keeps its best model and resume state, noting it in ``received``.

    ``kill`` and batch schedulers (a job's time limit, pre-emption) send SIGTERM, which would
    otherwise end the process at once and lose the epoch under way and the optimizer state; and
    a run started in the background by a script ignores SIGINT.
    """

    def interrupt(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum))
        raise KeyboardInterrupt

    previous = signal.signal(signum, interrupt)
    try:
        yield
    finally:
        signal.signal(signum, previous)


class ProgressBar:
    """A tqdm bar per stage on stderr (steps, loss, ETA) and one line per epoch."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def follow(self, generator: Generator[TrainEvent, None, TrainResult]) -> TrainResult:
        while True:
            try:
                event = next(generator)
            except StopIteration as stop:
                self.close()
                return stop.value
            if self.enabled:
                self.show(event)

    def show(self, event: TrainEvent) -> None:
        from tqdm import tqdm

        if event.kind in ("step", "epoch") and event.total:
            if self.bar is None or self.bar.total != event.total or self.bar.desc != f"stage {event.stage}":
                self.close()
                self.bar = tqdm(
                    total=event.total,
                    desc=f"stage {event.stage}",
                    unit="step",
                    file=sys.stderr,
                    initial=event.done - (event.kind == "step"),
                    dynamic_ncols=True,
                )
            self.bar.update(event.done - self.bar.n)
            self.bar.set_postfix(
                epoch=f"{event.epoch + (event.kind == 'step')}/{event.epochs}", loss=f"{event.loss:.4f}", refresh=False
            )
        if event.kind != "step" and event.message:
            tqdm.write(event.message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
