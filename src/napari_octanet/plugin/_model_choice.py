"""What the Segment and Fine-tune docks share about models: the file entry, its picker, news of new models,
and a model list that follows the registry while its dock is docked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from magicgui.widgets import ComboBox, FileEdit
from psygnal import Signal
from qtpy.QtWidgets import QWidget
from superqt.utils import ensure_main_thread

from napari_octanet.core.registry import ModelEntry, registry

from ._dock_lifetime import DockEvents

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


def relist(models: ComboBox) -> None:
    """List the choices afresh in the order of the combo box's choices function, keeping the selection
    and announcing no change: magicgui would add a new model at the end, after 'checkpoint file…'."""
    chosen = models.value
    with models.changed.blocked():
        models.choices = ()
        models.reset_choices()
        if chosen in models.choices:
            models.value = chosen
            return
    models.changed.emit(models.value)  # the chosen model was unregistered meanwhile: the dock follows the new choice


class ModelListener:
    """Keeps a dock's model list in the registry's order while the dock is docked, and tells the dock of
    each model registered (``on_registered``, once listed) and fine-tuned (``on_trained``), if it asks.

    It stops listening when the dock is closed (napari's X only takes the widget out of its dock, and a
    registry listener would keep a closed dock alive, acting out of sight) and listens again, listing
    the models registered meanwhile, when the dock is docked again.
    """

    def __init__(
        self,
        dock: QWidget,
        models: ComboBox,
        on_registered: Callable[[ModelEntry], None] | None = None,
        on_trained: Callable[[TrainedModel], None] | None = None,
    ) -> None:
        self._models = models
        self._on_registered = on_registered
        self._on_trained = on_trained
        self._unsubscribe: Callable[[], None] | None = None
        self._listen()
        dock.installEventFilter(DockEvents(dock, on_undocked=self._stop, on_docked=self._on_docked))
        dock.destroyed.connect(self._stop)

    def _listen(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = registry.subscribe(ensure_main_thread(self._relist_and_tell))
            if self._on_trained is not None:
                model_trained.connect(self._on_trained)

    def _stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            if self._on_trained is not None:
                model_trained.disconnect(self._on_trained)

    def _on_docked(self) -> None:
        relist(self._models)
        self._listen()

    def _relist_and_tell(self, entry: ModelEntry) -> None:
        relist(self._models)
        if self._on_registered is not None:
            self._on_registered(entry)
