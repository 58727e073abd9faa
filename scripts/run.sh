#!/usr/bin/env bash
# The README's run command: install the plugin (CPU torch first) and open napari with an image
# (the synthetic sample when none is given) and the Segment vessels dock, ready to press Segment.
#   bash scripts/run.sh [IMAGE_OR_FOLDER ...]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q "torch>=2.1,<3"
.venv/bin/python -m pip install -q -e ".[napari]"
exec .venv/bin/python -m napari_octanet "$@"
