#!/usr/bin/env bash
# The README's run command: install the plugin and open napari with an image (the synthetic sample
# when none is given) and the Segment vessels dock, ready to press Segment.
#   bash scripts/run.sh [IMAGE_OR_FOLDER ...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh napari
exec .venv/bin/python -m napari_octanet "$@"
