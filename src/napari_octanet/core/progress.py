"""Progress of long jobs: what core generators yield, and how to run one to its end.

Segmentation, evaluation, measurement and training are generators that yield progress and
return their result; GUIs stop them at any yield, scripts call :func:`run_to_end`.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """How far a long job has come; ``message`` is meant for the user."""

    done: int
    total: int
    message: str = ""


def run_to_end(generator: Generator[object, None, R]) -> R:
    """Exhaust a progress generator and return its result."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
