"""What a training run starts from and writes: the resume state, the best model and their provenance.

The resume state (``settings.last_path()``) is a checkpoint whose ``training_state`` is a
:class:`TrainState` and whose extra tensors are the optimizer's moments (and the weight average's,
see ``TrainSettings.ema_decay``). It is written after every epoch and when a run stops, and a run
given it as ``resume`` goes on from there. The best model (``settings.out``) is written whenever an
epoch beats the stage's best score. Both record the run's provenance and its history so far.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import LoadedModel, load_checkpoint, read_info, save_checkpoint
from ..network import NetworkConfig, OctaNet, get_config
from .averaging import WeightAverage
from .settings import TrainSettings, recorded_settings, settings_record


@dataclass
class TrainState:
    """What ``last`` checkpoints record so that a run can resume where it stopped."""

    stage: int = 1
    epoch: int = 0
    #: Steps finished in the epoch under way, and the sum of their losses: a run stopped
    #: mid-epoch resumes at the next step, with the same batches an unbroken run would draw.
    epoch_step: int = 0
    epoch_loss_sum: float = 0.0
    #: The stage's best validation Dice, or minus its lowest mean training loss without validation;
    #: None until an epoch has finished.
    best_score: float | None = None
    bad_epochs: int = 0
    #: Seconds spent in the current stage (for a time budget that survives a resume).
    stage_seconds: float = 0.0
    #: Steps the stage's weight average has followed (see ``TrainSettings.ema_decay``).
    ema_updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def initial_model(
    settings: TrainSettings, device: torch.device
) -> tuple[OctaNet, TrainState, dict[str, torch.Tensor], dict[str, Any] | None]:
    """The network to train, the state to go on from, the optimizer's saved tensors, and the lineage."""
    if settings.resume:
        loaded, optimizer_tensors = load_checkpoint(settings.resume, device)
        saved = dict(loaded.info.training_state)
        if "best_dice" in saved:  # written before best_score had its name; -1 meant "none yet"
            old = saved.pop("best_dice")
            saved.setdefault("best_score", None if old == -1.0 else old)
        state = TrainState(**{k: saved[k] for k in asdict(TrainState()) if k in saved})
        return loaded.network, state, optimizer_tensors, loaded.info.provenance.get("started_from")
    if settings.init in (None, "", "scratch"):
        config = settings.config if isinstance(settings.config, NetworkConfig) else get_config(settings.config)
        return OctaNet(config).to(device), TrainState(), {}, None
    from ..registry import registry

    loaded: LoadedModel = load_checkpoint(registry.resolve(settings.init), device)[0]
    return loaded.network, TrainState(), {}, started_from(loaded)


def started_from(model: LoadedModel) -> dict[str, Any]:
    """A fine-tuned model's lineage: the starting model's file name and provenance, less its epoch history."""
    kept = {key: value for key, value in model.info.provenance.items() if key != "history"}
    return {"model": Path(model.source).name, **kept}


def resumed_settings(resume_state: str | Path) -> TrainSettings | None:
    """The settings of the run that wrote ``resume_state`` (None if it predates their recording)."""
    return recorded_settings(read_info(resume_state).provenance)


class RunCheckpoints:
    """The files one run writes (on the main process only), each with the run's provenance."""

    def __init__(self, settings: TrainSettings, provenance: dict[str, Any], is_main: bool) -> None:
        self.settings = settings
        self.best_path = Path(settings.out)
        self.provenance = {**provenance, "settings": settings_record(settings)}
        self.is_main = is_main

    def save_best(self, network: nn.Module, state: TrainState) -> None:
        if self.is_main:
            save_checkpoint(self.best_path, network, provenance=self.provenance_of(state), half=self.settings.half)

    def save_last(
        self,
        network: nn.Module,
        state: TrainState,
        optimizer: torch.optim.Optimizer | None,
        average: WeightAverage | None,
    ) -> None:
        """Write the resume state; not before an epoch has finished (there is nothing worth resuming)."""
        if not self.is_main or not state.history:
            return
        tensors, groups = optimizer_state_tensors(optimizer) if optimizer is not None else ({}, [])
        if average is not None:
            tensors.update(average.state())
            state.ema_updates = average.updates
        training_state = {**asdict(state), "optimizer_param_groups": groups, "best_path": str(self.best_path)}
        save_checkpoint(
            self.settings.last_path(),
            network,
            provenance=self.provenance_of(state),
            training_state=training_state,
            optimizer_tensors=tensors,
        )

    def provenance_of(self, state: TrainState) -> dict[str, Any]:
        """The run's provenance with its history so far, its steps per stage and its best validated epoch."""
        validation = [h for h in state.history if h.get("val_dice") is not None]
        best = max(validation, key=lambda h: h["val_dice"], default=None)
        return {
            **self.provenance,
            "epochs_run": len(state.history),
            "steps_run": {
                f"stage{stage}": sum(h.get("steps", 0) for h in state.history if h["stage"] == stage)
                for stage in (1, 2)
            },
            "best_validation": best,
            "history": state.history,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }


def optimizer_state_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """Flatten an optimizer's state into named tensors (safetensors) plus JSON-able groups."""
    state_dict = optimizer.state_dict()
    tensors = {
        f"state.{index}.{name}": torch.as_tensor(value)
        for index, values in state_dict["state"].items()
        for name, value in values.items()
    }
    return tensors, state_dict["param_groups"]


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Restore saved optimizer state, each moment laid out in memory like its (channels-last) parameter."""
    params = [param for group in optimizer.param_groups for param in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("state."):
            continue  # the weight average's tensors share the resume state
        _, index, name = key.split(".", 2)
        param = params[int(index)]
        if value.shape == param.shape:
            value = torch.empty_like(param, dtype=value.dtype).copy_(value)
        state.setdefault(int(index), {})[name] = value
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
