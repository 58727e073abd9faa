#!/usr/bin/env bash
# The README's test command: install the plugin with its test extras into .venv, check the npe2
# manifest, then run pytest (pytest-xvfb starts a virtual X server for napari's canvas).
#   bash scripts/test.sh [PYTEST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh testing
.venv/bin/npe2 validate napari-octanet --imports
.venv/bin/python -m pytest "$@"
