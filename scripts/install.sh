#!/usr/bin/env bash
# Create .venv and install the plugin with the given extra (napari or testing). The CPU build of
# torch goes in first, so that no dependency can pull a multi-GB CUDA build; a torch you installed
# yourself (say, with CUDA) is kept as long as it is in the supported range.
#   bash scripts/install.sh EXTRA
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/python -m pip install -q "torch==2.13.0" || .venv/bin/python -m pip install -q "torch>=2.1,<3"
fi
.venv/bin/python -m pip install -q -e ".[$1]"
