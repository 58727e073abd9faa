#!/usr/bin/env bash
# Per-data-set specialists, an A/B for the quality recipe: the bundled model fine-tuned for a fixed
# time on one data set's train split (ROSSA: the manual labels only), then it and the bundled
# model scored on that data set's val split (paper protocol, octanet evaluate --json).
#   bash benchmarks/specialists.sh DATA [OUT] [MINUTES]
# DATA holds OCTA500_3M, OCTA500_6M and ROSSA in the image/label-pair layout. The val split also
# picks the best checkpoint, so the specialists' val figures are slightly optimistic.
set -euo pipefail
DATA=$1
OUT=${2:-runs/specialists}
MINUTES=${3:-9}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
for pair in "OCTA500_3M train" "OCTA500_6M train" "ROSSA train_manual"; do
    set -- $pair
    octanet train "$DATA/$1" --layout pairs --split "$2" --val-split val --init default \
        --epochs 100 --fine-epochs 100 --time-budget "$MINUTES" --samples-per-epoch 256 --batch-size 8 \
        --lr 2e-4 --crop-size 256 --patience 100 --seed 0 --threads "${THREADS:-2}" \
        --out "$OUT/$1.safetensors" --overwrite
    for model in default "$OUT/$1.safetensors"; do
        octanet evaluate "$DATA/$1" --layout pairs --split val --model "$model" --json \
            > "$OUT/$1.$(basename "$model" .safetensors).json"
    done
done
