"""What the Segment and Fine-tune docks share in their model choice: the file entry and its picker."""

from __future__ import annotations

from magicgui.widgets import FileEdit

#: The model-box entry that shows the file picker instead of a registered model.
CHECKPOINT_FILE = "checkpoint file…"


def checkpoint_picker(tooltip: str, **options: str) -> FileEdit:
    """A file picker for OCTA-Net checkpoints (``name=`` or ``label=`` as the dock lays it out)."""
    return FileEdit(mode="r", filter="OCTA-Net checkpoints (*.safetensors)", tooltip=tooltip, **options)
