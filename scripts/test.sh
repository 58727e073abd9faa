#!/usr/bin/env bash
# The README's test command: a virtual environment with the CPU build of torch first (so no
# dependency can pull a multi-GB CUDA build), the plugin with its test extras, then pytest
# (pytest-xvfb starts a virtual X server for napari's canvas).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q "torch>=2.1,<3"
.venv/bin/python -m pip install -q -e ".[testing]"
.venv/bin/npe2 validate napari-octanet --imports
.venv/bin/python -m pytest "$@"
