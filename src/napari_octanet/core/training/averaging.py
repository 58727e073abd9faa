"""An exponential moving average (EMA) of a module's weights, kept beside the weights being trained.

The average follows the trained weights step by step (``update``) and takes their place only while
it is validated or saved (``swapped_in``). Batch-norm statistics are averaged like the parameters,
so the swapped-in module is consistent. Early on the decay is lowered, ``(1 + n) / (10 + n)`` after
``n`` updates, so that an average started from random weights forgets them within a few hundred
steps instead of a few thousand.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

#: Resume-state tensors of the average are stored under this prefix (beside the optimizer's).
STATE_PREFIX = "ema."


class WeightAverage:
    """EMA of every floating-point parameter and buffer of ``module``."""

    def __init__(
        self, module: nn.Module, decay: float, saved: dict[str, torch.Tensor] | None = None, updates: int = 0
    ) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay {decay} must be between 0 and 1 (0.999 is usual)")
        self.decay = decay
        self.updates = updates
        # state_dict's tensors are detached views of the module's own: writing them writes the module
        self._live = {name: t for name, t in module.state_dict().items() if t.is_floating_point()}
        saved = saved or {}
        self._average = {name: torch.empty_like(live).copy_(saved.get(name, live)) for name, live in self._live.items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the module's current weights (call after each optimizer step)."""
        weight = 1.0 - self.current_decay()
        for name, live in self._live.items():
            self._average[name].lerp_(live, weight)
        self.updates += 1

    @contextlib.contextmanager
    @torch.no_grad()
    def swapped_in(self) -> Iterator[None]:
        """The module holds the average inside the block and its trained weights again after it."""
        trained = {name: live.clone() for name, live in self._live.items()}
        self._copy_into_module(self._average)
        try:
            yield
        finally:
            self._copy_into_module(trained)

    @torch.no_grad()
    def copy_to_module(self) -> None:
        """Replace the module's weights by the average for good."""
        self._copy_into_module(self._average)

    def state(self) -> dict[str, torch.Tensor]:
        """The average's tensors, named for a resume state."""
        return {STATE_PREFIX + name: tensor for name, tensor in self._average.items()}

    def _copy_into_module(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, live in self._live.items():
            live.copy_(tensors[name])


def saved_average(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The average's tensors from a resume state's extra tensors, their prefix removed."""
    return {name[len(STATE_PREFIX) :]: value for name, value in tensors.items() if name.startswith(STATE_PREFIX)}
