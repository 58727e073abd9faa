#!/usr/bin/env bash
# Per-data-set specialists, an A/B for the quality recipe: a shipped model fine-tuned on one data
# set's train split (ROSSA: the manual labels only), then it and its starting model scored on that
# data set's val split (paper protocol, octanet evaluate --json).
#   bash benchmarks/specialists.sh DATA [OUT] [START]
# DATA holds OCTA500_3M, OCTA500_6M and ROSSA in the image/label-pair layout. START is the model to
# fine-tune (default octa500-rossa). The schedule is 512 SCS + 128 SRS steps of 8 crops of 256 px,
# lr 2e-4, flips and turns, EMA 0.999 (about 35 minutes each on one thread of a 2-core CPU). With
# MINUTES set, the earlier protocol runs instead: a MINUTES wall-clock budget, lr 2e-4, no EMA, full
# augmentation (docs/training.md: START=default MINUTES=9). The val split also picks the best checkpoint, so
# the specialists' val figures are slightly optimistic.
set -euo pipefail
DATA=$1
OUT=${2:-runs/specialists}
START=${3:-octa500-rossa}
if [[ -n "${MINUTES:-}" ]]; then
    schedule=(--epochs 100 --fine-epochs 100 --time-budget "$MINUTES" --samples-per-epoch 256 --patience 100 --seed 0)
else
    schedule=(--epochs 4 --fine-epochs 1 --samples-per-epoch 1024 --patience 1000 --augment flips --ema 0.999 --seed 5)
fi
mkdir -p "$OUT"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
for pair in "OCTA500_3M train" "OCTA500_6M train" "ROSSA train_manual"; do
    set -- $pair
    octanet train "$DATA/$1" --layout pairs --split "$2" --val-split val --init "$START" "${schedule[@]}" \
        --batch-size 8 --lr 2e-4 --crop-size 256 --threads "${THREADS:-1}" --out "$OUT/$1.safetensors" --overwrite
    for model in "$START" "$OUT/$1.safetensors"; do
        octanet evaluate "$DATA/$1" --layout pairs --split val --model "$model" --json \
            > "$OUT/$1.$(basename "$model" .safetensors).json"
    done
done
