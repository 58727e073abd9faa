#!/usr/bin/env bash
# Scores the bundled model on each val split of the octa-dev data (paper protocol: Otsu, no
# tolerance) and writes one `octanet evaluate --json` file per split into OUT (default runs/eval).
#   bash scripts/evaluate_default_model.sh [DATA_ROOT] [OUT]
set -euo pipefail
DATA=${1:-../shared/data/octa-dev}
OUT=${2:-runs/eval}
mkdir -p "$OUT"
for set in OCTA500_3M OCTA500_6M ROSSA; do
    octanet evaluate "$DATA/$set" --split val --layout pairs --json > "$OUT/$set.json"
    python3 -c "import json; d=json.load(open('$OUT/$set.json')); print('$set/val: n=%d Dice %.4f ± %.4f, AUC %.4f, ACC %.4f, SEN %.4f, SPE %.4f, kappa %.4f, IoU %.4f' % tuple(d[k] for k in ('n_images','dice','dice_std','auc','acc','sen','spe','kappa','iou')))"
done
