#!/usr/bin/env bash
# Reproduces the bundled default model, src/napari_octanet/weights/octanet-lite-default.safetensors,
# with the project's own `octanet train`, on the CPU (a 115-minute budget on 2 cores) or a GPU.
# The budget caps wall-clock time and the learning-rate decay follows it, so a faster machine runs
# more steps in the same time; the step count of the shipped weights is in their provenance
# (`octanet info`).
#
#   bash scripts/train_default_model.sh [DATA_ROOT] [RUN_DIR]
#
# DATA_ROOT holds image/label pairs: OCTA500_3M/{train,val}, OCTA500_6M/{train,val},
# ROSSA/{train_manual,train_sam,val}. All train splits are used together; the val splits select
# the best checkpoint (the val scores in the docs are therefore optimistic by model selection).
set -euo pipefail
DATA=${1:-../shared/data/octa-dev}
RUN=${2:-runs/default}
mkdir -p "$RUN"
# Several threads spinning on two cores waste most of their time; let idle threads sleep.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
resume=()
[ -f "$RUN/octanet-lite-last.safetensors" ] && resume=(--resume "$RUN/octanet-lite-last.safetensors")

octanet train "$DATA" --layout pairs --split train --val-split val \
    --config lite --init scratch --loss dice_bce \
    --epochs 100 --fine-epochs 20 --time-budget ${BUDGET_MINUTES:-115} --samples-per-epoch 1024 --batch-size 8 --lr 2e-3 \
    --crop-size 256 --balance-groups --patience 100 --seed 0 --threads ${THREADS:-2} \
    --out "$RUN/octanet-lite.safetensors" "${resume[@]}" \
    --note "Trained on OCTA-500 (Li et al., 3M and 6M projections) and ROSSA (Ning et al., ICASSP 2024; train_manual + SAM-labelled train_sam). Research use only; the data sets' own terms apply."

octanet export "$RUN/octanet-lite.safetensors" src/napari_octanet/weights/octanet-lite-default.safetensors --half --overwrite
