#!/usr/bin/env bash
# Reproduces the bundled models `default` (src/napari_octanet/weights/octanet-lite-default.safetensors)
# and `octa500-rossa` with the project's own `octanet train`: six phases make the preset `octa500-rossa`
# (lite from scratch on the three manual train splits, no SAM labels; docs/training.md), then a seventh
# that makes the model hold up at other pixel sizes: crops rescaled across 3-20 um per pixel for half
# the draws (--augment rescale), batch-norm statistics frozen, weight EMA, validated on the val splits
# and on OCTA500_3M val resampled x2 and OCTA500_6M val x1.3 (benchmarks/_resampled.py), so that model
# selection weighs other pixel sizes too. Phases 1-6 are fixed numbers of steps (phase 1: 2560 SCS +
# 512 SRS steps of 8 crops; phase 2: 2304 + 512; phase 3: 1024 + 256; phase 4: 768 + 256 steps of 8
# whole images; phases 5 and 6: 384 + 128 each); phase 7 runs for a time budget (120 minutes; the
# shipped weights ran it on a shared 2-core CPU in float32, and their step counts are in the
# provenance: `octanet info default`). On 2 CPU threads phases 1-6 take about 4 hours with AMX
# (bfloat16) and 4-6 times as long without.
#
#   bash scripts/train_default_model.sh [DATA_ROOT] [RUN_DIR]
#
# Run again after a stop: a finished phase is skipped and a stopped one resumes.
set -euo pipefail
DATA=${1:-../shared/data/octa-dev}
RUN=${2:-runs/default}
mkdir -p "$RUN"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# A view of DATA without ROSSA's SAM-labelled train_sam: links to the splits the recipe uses, so that
# every set keeps its group name (OCTA500_3M/train, ROSSA/train_manual, ...) and --split train
# finds train_manual but nothing else.
view=$RUN/data
for split in OCTA500_3M/train OCTA500_3M/val OCTA500_6M/train OCTA500_6M/val ROSSA/train_manual ROSSA/val; do
    [ -d "$DATA/$split" ] || { echo "missing $DATA/$split: DATA_ROOT must hold octa-dev's layout" >&2; exit 2; }
    if [ -e "$view/$split" ] && [ ! -L "$view/$split" ]; then
        echo "$view/$split exists and is not a link this script made: move it or pick another RUN_DIR" >&2; exit 2
    fi
    mkdir -p "$view/$(dirname "$split")"
    ln -sfn "$(cd "$DATA/$split" && pwd)" "$view/$split"
done
folders=("$view")
common=(--layout pairs --split train --val-split val --config lite --loss dice_bce --batch-size 8 --crop-size 256
        --augment flips --balance-groups --patience 1000 --threads "${THREADS:-2}")

phase() {  # NAME [octanet train options]
    local out=$RUN/$1.safetensors; shift
    [ -f "$out" ] && [ ! -f "${out%.safetensors}-last.safetensors" ] && return 0
    local resume=()
    [ -f "${out%.safetensors}-last.safetensors" ] && resume=(--resume "${out%.safetensors}-last.safetensors")
    octanet train "${folders[@]}" "${common[@]}" --out "$out" "${resume[@]}" "$@"
}
phase phase1 --init scratch --lr 2e-3 --epochs 20 --fine-epochs 4 --samples-per-epoch 1024 --seed 0
phase phase2 --init "$RUN/phase1.safetensors" --lr 1e-3 --epochs 9 --fine-epochs 2 --samples-per-epoch 2048 --seed 1
phase phase3 --init "$RUN/phase2.safetensors" --lr 5e-4 --ema 0.999 --epochs 4 --fine-epochs 1 --samples-per-epoch 2048 --seed 3
phase phase4 --init "$RUN/phase3.safetensors" --lr 2.5e-4 --ema 0.999 --epochs 6 --fine-epochs 2 --samples-per-epoch 1024 --seed 3 \
    --crop-size whole --freeze-batch-norm
phase phase5 --init "$RUN/phase4.safetensors" --lr 1e-3 --ema 0.999 --epochs 3 --fine-epochs 1 --samples-per-epoch 1024 --seed 3 \
    --crop-size whole --freeze-batch-norm --augment none
phase phase6 --init "$RUN/phase5.safetensors" --lr 5e-4 --ema 0.999 --epochs 3 --fine-epochs 1 --samples-per-epoch 1024 --seed 4 \
    --crop-size whole --freeze-batch-norm --augment none

# Phase 6's model is the preset `octa500-rossa`, the best on OCTA-500 and ROSSA scans at their own pixel sizes.
octanet export "$RUN/phase6.safetensors" src/napari_octanet/weights/octanet-lite-octa500-rossa.safetensors --half --overwrite \
    --note "Preset for OCTA-500 and ROSSA scans at their own pixel sizes. Trained on OCTA-500 (Li et al., 3M and 6M projections) and ROSSA (Ning et al., ICASSP 2024; train_manual only, not the SAM-labelled train_sam): phases 1-6 of scripts/train_default_model.sh. Research use only; the data sets' own terms apply."

# Phase 7: rescaled crops, validated at other pixel sizes too.
for resampled in "OCTA500_3M 2 OCTA500_3M-x2" "OCTA500_6M 1.3 OCTA500_6M-x1.3"; do
    set -- $resampled
    [ -d "$view/$3/val" ] || python3 benchmarks/_resampled.py "$DATA" "$1" "$2" "$view/$3/val"
done
phase phase7 --init "$RUN/phase6.safetensors" --lr 5e-4 --ema 0.999 --epochs 8 --fine-epochs 2 --samples-per-epoch 2048 --seed 5 \
    --augment rescale --freeze-batch-norm --time-budget "${BUDGET_MINUTES:-120}" --patience 100

octanet export "$RUN/phase7.safetensors" src/napari_octanet/weights/octanet-lite-default.safetensors --half --overwrite \
    --note "Trained on OCTA-500 (Li et al., 3M and 6M projections) and ROSSA (Ning et al., ICASSP 2024; train_manual only, not the SAM-labelled train_sam): six phases without rescaling (scripts/train_default_model.sh), then a seventh with crops rescaled across 3-20 um per pixel. Research use only; the data sets' own terms apply."
