"""The napari manifest: it parses, it contributes what the README promises, its commands import.

Also checks that the core stays free of Qt and napari (it runs on GPU servers without either).
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys

import pytest
from npe2 import PluginManifest

PLUGIN = "napari-octanet"


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_distribution(PLUGIN)


def test_manifest_contributes_a_reader_writers_sample_data_and_the_docks(manifest):
    contributions = manifest.contributions
    assert manifest.name == PLUGIN
    assert [reader.command for reader in contributions.readers] == [f"{PLUGIN}.read"]
    assert [sample.key for sample in contributions.sample_data] == ["synthetic_octa"]
    assert {widget.display_name for widget in contributions.widgets} >= {"Segment vessels", "Fine-tune"}
    writers = {writer.command: (writer.layer_types, writer.filename_extensions) for writer in contributions.writers}
    assert writers == {
        f"{PLUGIN}.write_labels": (["labels"], [".png", ".tif", ".tiff"]),
        f"{PLUGIN}.write_image": (["image"], [".tif", ".tiff"]),
    }
    declared = {command.id for command in contributions.commands}
    used = {reader.command for reader in contributions.readers}
    used |= {sample.command for sample in contributions.sample_data}
    used |= {widget.command for widget in contributions.widgets}
    used |= set(writers)
    assert used <= declared


def _commands() -> list[tuple[str, str]]:
    manifest = PluginManifest.from_distribution(PLUGIN)
    return [(command.id, command.python_name) for command in manifest.contributions.commands]


@pytest.mark.parametrize(("command_id", "python_name"), _commands(), ids=[c for c, _ in _commands()])
def test_command_python_names_resolve(command_id, python_name):
    module_name, _, attribute = python_name.partition(":")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_importing_the_core_loads_neither_qt_nor_napari():
    code = (
        "import sys, importlib\n"
        "for name in ('', '.checkpoint', '.devices', '.inference', '.registry', '.library', '.thresholds',\n"
        "             '.preprocess'):\n"
        "    importlib.import_module('napari_octanet.core' + name)\n"
        "gui_modules = ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'magicgui')\n"
        "gui = sorted(m for m in gui_modules if m in sys.modules)\n"
        "print(', '.join(gui))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "", f"importing the core loaded {completed.stdout.strip()}"
