#!/usr/bin/env bash
# Scores a model (default: the bundled one) on one split of each of OCTA500_3M, OCTA500_6M and ROSSA
# (paper protocol: Otsu, no tolerance) and writes one `octanet evaluate --json` file per set into
# OUT (default runs/eval/MODEL-SPLIT, so that runs of other models or splits keep their files).
#   [MODEL=octa500-rossa] [SPLIT=test] bash scripts/evaluate_default_model.sh [DATA_ROOT] [OUT]
# octa-dev holds the train and val splits; the test splits are in the ROSSA paper's public
# repository (github.com/nhjydywd/OCTA-FRNet, its dataset/ folder), in the same layout.
set -euo pipefail
DATA=${1:-../shared/data/octa-dev}
SPLIT=${SPLIT:-val}
model=()  # without MODEL, octanet's own default model
[ -n "${MODEL:-}" ] && model=(--model "$MODEL")
OUT=${2:-runs/eval/$(basename "${MODEL:-default}" .safetensors)-$SPLIT}
mkdir -p "$OUT"
for set in OCTA500_3M OCTA500_6M ROSSA; do
    octanet evaluate "$DATA/$set" --split "$SPLIT" --layout pairs "${model[@]}" --json > "$OUT/$set.json"
    python3 -c "import json; d=json.load(open('$OUT/$set.json')); print('$set/$SPLIT: n=%d Dice %.4f ± %.4f, AUC %.4f, ACC %.4f, SEN %.4f, SPE %.4f, kappa %.4f, IoU %.4f' % tuple(d[k] for k in ('n_images','dice','dice_std','auc','acc','sen','spe','kappa','iou')))"
done
