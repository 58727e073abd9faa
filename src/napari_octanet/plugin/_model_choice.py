"""What the Segment and Fine-tune docks share about models: the file entry, its picker, news of new models."""

from __future__ import annotations

from dataclasses import dataclass

from magicgui.widgets import FileEdit
from psygnal import Signal

#: The model-box entry that shows the file picker instead of a registered model.
CHECKPOINT_FILE = "checkpoint file…"


def checkpoint_picker(tooltip: str, **options: str) -> FileEdit:
    """A file picker for OCTA-Net checkpoints (``name=`` or ``label=`` as the dock lays it out)."""
    return FileEdit(mode="r", filter="OCTA-Net checkpoints (*.safetensors)", tooltip=tooltip, **options)


@dataclass(frozen=True)
class TrainedModel:
    """A model the Fine-tune dock just saved: its registered name, and the first image it was trained on."""

    name: str
    image: str


class _Announcer:
    """Holds the signal: psygnal signals live on classes."""

    trained = Signal(TrainedModel)


#: Emitted (on the GUI thread) when the Fine-tune dock has saved and registered a model, so that the
#: Segment vessels dock can select it and segment the image again.
model_trained = _Announcer().trained
