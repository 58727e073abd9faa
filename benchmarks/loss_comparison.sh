#!/usr/bin/env bash
# MSE (the reference's loss) against Dice + BCE: train `lite` from scratch on OCTA500_3M/train for
# the same number of steps with each loss (validation held out from train, seed fixed), then score
# both on OCTA500_3M/val with the paper's protocol. Prints wall time, peak memory and the scores.
#   bash benchmarks/loss_comparison.sh [DATA_ROOT] [EPOCHS] [THREADS]
# An epoch is 256 random 256x256 crops (32 steps of 8); stage 2 (SRS) gets a third of the epochs.
set -euo pipefail
DATA=${1:-../shared/data/octa-dev}/OCTA500_3M
EPOCHS=${2:-6}
THREADS=${3:-1}
OUT=runs/loss-comparison
mkdir -p "$OUT"
for loss in mse dice_bce; do
    /usr/bin/time -f "$loss: %e s wall, peak RSS %M KiB" \
        octanet train "$DATA" --split train --val-fraction 0.1 --config lite --init scratch --loss "$loss" \
        --epochs "$EPOCHS" --fine-epochs $((EPOCHS / 3)) --samples-per-epoch 256 --batch-size 8 \
        --lr 2e-3 --crop-size 256 --seed 0 --threads "$THREADS" --out "$OUT/$loss.safetensors" 2> "$OUT/$loss.log"
    tail -n 1 "$OUT/$loss.log"
    octanet evaluate "$DATA" --split val --model "$OUT/$loss.safetensors" --json > "$OUT/$loss-val.json"
    python3 -c "import json; d=json.load(open('$OUT/$loss-val.json')); print('$loss', 'OCTA500_3M/val Dice %.4f ± %.4f, AUC %.4f' % (d['dice'], d['dice_std'], d['auc']))"
done
