"""One registry of the models a user can pick: the bundled models, the model library, and checkpoints added.

The docks list it; the training dock adds to it. Its entries are the bundled models (the
generalist once, as 'default', with 'lite' an alias that resolves but is not listed; then the
presets named for the scans they fit, see ``BUNDLED_MODELS``), the models registered in this
process, and every model in the user's model library (:mod:`.library`), scanned again at each
listing so that models trained or removed elsewhere show up without a restart. A model spec is
a listed name, the alias, or a checkpoint path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .checkpoint import read_info

DEFAULT_NAME = "default"
#: Names that resolve to the bundled model without being listed (the configuration's name).
BUNDLED_ALIASES = ("lite",)


@dataclass(frozen=True)
class BundledModel:
    name: str
    file: str
    description: str


#: The weights inside the package: the generalist default first, then presets named for the scans
#: they fit (each one's figures and provenance are in docs/benchmarks.md and ``octanet info NAME``).
BUNDLED_MODELS = (
    BundledModel(
        DEFAULT_NAME,
        "octanet-lite-default.safetensors",
        "bundled lite model trained on OCTA-500 and ROSSA, with crops rescaled across 3-20 µm per pixel: "
        "for any OCTA scan, whatever its pixel size",
    ),
    BundledModel(
        "octa500-rossa",
        "octanet-lite-octa500-rossa.safetensors",
        "bundled lite preset for OCTA-500 and ROSSA scans at their own pixel sizes: 0.001-0.004 higher Dice "
        "there, less robust at other pixel sizes",
    ),
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    description: str = ""


class ModelNotFoundError(LookupError):
    """A model spec that is neither a registered name nor an existing checkpoint file."""


def bundled_checkpoint(name: str = DEFAULT_NAME) -> Path | None:
    """The weights of a bundled model (the default unless named), or None in a build without them."""
    model = next((m for m in BUNDLED_MODELS if m.name == name), None)
    if model is None:
        return None
    path = Path(str(resources.files("napari_octanet").joinpath("weights", model.file)))
    return path if path.is_file() else None


def bundled_checkpoints() -> list[tuple[BundledModel, Path]]:
    """The bundled models this installation has, with their weights, in ``BUNDLED_MODELS`` order."""
    found = ((model, bundled_checkpoint(model.name)) for model in BUNDLED_MODELS)
    return [(model, path) for model, path in found if path is not None]


def is_bundled(path: Path) -> bool:
    """Whether a checkpoint file is one of the bundled models (which are never removed)."""
    return any(bundled.resolve() == path.resolve() for _, bundled in bundled_checkpoints())


class ModelRegistry:
    """Named checkpoints, with callbacks so that open widgets see models as they are added."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelEntry] = {}
        self._listeners: list[Callable[[ModelEntry], None]] = []
        self._lock = threading.Lock()
        for model, path in bundled_checkpoints():
            self._entries[model.name] = ModelEntry(model.name, path, model.description)

    def entries(self) -> list[ModelEntry]:
        """The registered models, then the library's models not registered already (by file)."""
        from .library import library_models

        with self._lock:
            registered = list(self._entries.values())
        known_paths = {entry.path.resolve() for entry in registered}
        names = {entry.name for entry in registered}
        library = []
        for model in library_models():
            if model.path.resolve() in known_paths:
                continue
            name = model.name if model.name not in names else f"{model.name} (library)"
            library.append(ModelEntry(name, model.path, f"trained model in the library: {model.path}"))
        return registered + library

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    def get(self, name: str) -> ModelEntry | None:
        """The entry listed under ``name`` (or the bundled model's alias), or None."""
        with self._lock:
            if name in BUNDLED_ALIASES and DEFAULT_NAME in self._entries:
                name = DEFAULT_NAME
            entry = self._entries.get(name)
        if entry is not None:
            return entry
        return next((e for e in self.entries() if e.name == name), None)

    def register(self, path: str | Path, name: str | None = None, description: str = "") -> ModelEntry:
        """Add (or replace) a checkpoint under a name; the file must be a valid checkpoint."""
        path = Path(path).resolve()
        info = read_info(path)
        entry = ModelEntry(name or path.stem, path, description or f"{info.network.name} checkpoint {path.name}")
        with self._lock:
            self._entries[entry.name] = entry
            listeners = list(self._listeners)
        for listener in listeners:
            listener(entry)
        return entry

    def unregister(self, name: str) -> None:
        """Forget a registered name (a no-op for unknown names); the checkpoint file is left alone."""
        with self._lock:
            self._entries.pop(name, None)

    def subscribe(self, listener: Callable[[ModelEntry], None]) -> Callable[[], None]:
        """Call ``listener`` for every model registered from now on; returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def resolve(self, spec: str | Path | None = None) -> Path:
        """Turn a name or a path (None means the default) into a checkpoint path."""
        spec = DEFAULT_NAME if spec is None or str(spec).strip() == "" else spec
        entry = self.get(str(spec))
        if entry is not None:
            return entry.path
        path = Path(spec).expanduser()
        if path.is_file():
            return path
        if str(spec) in (DEFAULT_NAME, *BUNDLED_ALIASES):
            raise ModelNotFoundError(
                "no bundled weights are installed with this copy of napari-octanet; "
                "pass a checkpoint file (--model PATH) or train one with 'octanet train'"
            )
        if str(spec) == "paper":
            raise ModelNotFoundError(
                "no trained weights for the 'paper' configuration ship with napari-octanet; train them "
                "with 'octanet train DATA --config paper' and pass the checkpoint path"
            )
        known = ", ".join(self.names()) or "none"
        raise ModelNotFoundError(f"model {str(spec)!r} is neither a registered model ({known}) nor a checkpoint file")


#: The process-wide registry shared by the CLI and the napari widgets.
registry = ModelRegistry()

__all__ = [
    "BUNDLED_ALIASES",
    "BUNDLED_MODELS",
    "DEFAULT_NAME",
    "BundledModel",
    "ModelEntry",
    "ModelNotFoundError",
    "ModelRegistry",
    "bundled_checkpoint",
    "bundled_checkpoints",
    "is_bundled",
    "registry",
]
