#!/usr/bin/env bash
# MSE (the reference's loss) against Dice + BCE: train `lite` from scratch on OCTA500_3M/train for
# the same wall-clock budget with each loss (validation held out from train), then score both on
# OCTA500_3M/val with the paper's protocol. Prints the time, peak memory and the JSON summaries.
#   bash benchmarks/loss_comparison.sh [DATA_ROOT] [MINUTES] [THREADS]
set -euo pipefail
DATA=${1:-../shared/data/octa-dev}/OCTA500_3M
MINUTES=${2:-12}
THREADS=${3:-1}
OUT=runs/loss-comparison
mkdir -p "$OUT"
for loss in mse dice_bce; do
    /usr/bin/time -f "$loss: %e s wall, peak RSS %M KiB" \
        octanet train "$DATA" --split train --val-fraction 0.1 --config lite --init scratch --loss "$loss" \
        --epochs 100 --fine-epochs 20 --time-budget "$MINUTES" --samples-per-epoch 256 --batch-size 8 \
        --lr 2e-3 --crop-size 256 --seed 0 --threads "$THREADS" --out "$OUT/$loss.safetensors" 2> "$OUT/$loss.log"
    tail -n 1 "$OUT/$loss.log"
    octanet evaluate "$DATA" --split val --model "$OUT/$loss.safetensors" --json > "$OUT/$loss-val.json"
    python3 -c "import json,sys; d=json.load(open('$OUT/$loss-val.json')); print('$loss', 'val Dice %.4f ± %.4f, AUC %.4f' % (d['dice'], d['dice_std'], d['auc']))"
done
