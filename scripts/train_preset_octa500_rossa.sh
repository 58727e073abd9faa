#!/usr/bin/env bash
# Reproduces the bundled preset `octa500-rossa`,
# src/napari_octanet/weights/octanet-lite-octa500-rossa.safetensors, with the project's own `octanet
# train`: lite from scratch on the three manual train splits (no SAM labels), flips and turns only,
# then a second run from its best model at half the learning rate, then a third at lr 5e-4 that
# validates and keeps a weight average (EMA 0.999), then a fourth at lr 2.5e-4 on whole images with
# the batch-norm statistics frozen (each batch holds one data set's scans), then a fifth and a sixth
# like the fourth but with no augmentation at all, at lr 1e-3 and then 5e-4. Each phase is a fixed
# number of steps (phase 1: 2560 SCS + 512 SRS steps of 8 crops; phase 2: 2304 + 512; phase 3: 1024
# + 256; phase 4: 768 + 256 steps of 8 whole images; phases 5 and 6: 384 + 128 each), so the result
# does not depend on the machine; the step counts go into the provenance (`octanet info
# octa500-rossa`). The shipped weights ran phases 1 and 2 under time budgets on one shared H200 (6
# and 2.5 minutes), so their steps are at most these, phase 3 on this 2-core CPU (one thread, 85
# minutes while other runs shared the CPU) from phase 2's float16 export, phase 4 on the same CPU (2
# threads, bfloat16, about 35 minutes) from phase 3's float16 export, and phases 5 and 6 (2 threads,
# bfloat16, about 20 minutes each) from phase 4's float16 export. On 2 CPU threads the whole recipe
# takes about 4 hours with AMX (bfloat16); a CPU without it trains in float32, and a whole-image step
# took 4-6 times as long on a 2-core AMD EPYC (5.5-12 s against 1.1-1.9 s).
#
#   bash scripts/train_preset_octa500_rossa.sh [DATA_ROOT] [RUN_DIR]
#
# Run again after a stop: a finished phase is skipped and a stopped one resumes.
set -euo pipefail
DATA=${1:-../shared/data/octa-dev}
RUN=${2:-runs/octa500-rossa}
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

octanet export "$RUN/phase6.safetensors" src/napari_octanet/weights/octanet-lite-octa500-rossa.safetensors --half --overwrite \
    --note "Preset for OCTA-500 and ROSSA scans. Trained on OCTA-500 (Li et al., 3M and 6M projections) and ROSSA (Ning et al., ICASSP 2024; train_manual only, not the SAM-labelled train_sam): two phases on one GPU with flips and turns, then on a CPU a third (weight EMA), a fourth (whole images, frozen batch-norm statistics) and a fifth and sixth (the same without augmentation) (scripts/train_preset_octa500_rossa.sh). Research use only; the data sets' own terms apply."
