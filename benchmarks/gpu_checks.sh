#!/usr/bin/env bash
# What a GPU buys, in one call: the inference tests on CUDA, CUDA inference speed (batch 1 and 16,
# float16 autocast), then the quality issue's training runs side by side on the one GPU, each
# with the same wall-clock budget, each model scored on every val split (paper protocol): `lite`
# and the U-Net yardstick from scratch, each with flips and turns (the yardstick's recipe) and
# with no augmentation at all, which bought `lite` 0.007 group-mean val Dice after 512 CPU steps
# (README: No augmentation from scratch). Until 2026-11-28 (stop 25) the runs were lite-full,
# lite-flips, lite-b16, paper-full and the U-Net (README: the GPU table's first five rows).
#
#   bash benchmarks/gpu_checks.sh DATA_ROOT OUT_DIR [MINUTES]
#
# DATA_ROOT is laid out like octa-dev (<set>/<split>/{image,label}); every split named train* is
# trained on, so leave ROSSA/train_sam out of it for the recipe without SAM labels. Runs without
# installing the package (PYTHONPATH=src), so that a bare GPU image with torch, scikit-image,
# safetensors, tifffile and tqdm will do. OUT_DIR gets the logs, JSON results and the lite models
# in float16; the paper models stay in RUNS (default /tmp/octanet-runs).
set -uo pipefail
DATA=$1
OUT=$2
MINUTES=${3:-6}
RUNS=${RUNS:-/tmp/octanet-runs}
THREADS=${THREADS:-3}
mkdir -p "$OUT" "$RUNS"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 NAPARI_OCTANET_MODELS=$RUNS/library
octanet() { python3 -m napari_octanet.cli "$@"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; nproc; } >"$OUT/machine.txt" 2>&1
python3 -m pytest -q -p no:cacheprovider tests/core/test_inference.py >"$OUT/pytest.txt" 2>&1
python3 benchmarks/bench_inference.py --models default paper --sizes 304 --devices cuda \
    --batches 1 16 --repeats 10 >"$OUT/bench.md" 2>&1

recipe=(--layout pairs --split train --val-split val --epochs 1000 --fine-epochs 200 --time-budget "$MINUTES"
        --samples-per-epoch 1024 --batch-size 8 --balance-groups --patience 1000 --seed 0 --threads "$THREADS"
        --init scratch --loss dice_bce --overwrite --keep-resume-state)
run() {  # NAME [extra octanet train options]
    local name=$1; shift
    octanet train "$DATA" "${recipe[@]}" --out "$RUNS/$name.safetensors" "$@" >"$OUT/$name.log" 2>&1
    for set in "$DATA"/*/; do
        octanet evaluate "$set" --split val --model "$RUNS/$name.safetensors" --json \
            >"$OUT/$name-$(basename "$set").json" 2>>"$OUT/$name.log"
    done
}
lite_runs=(lite-flips lite-none)
for name in "${lite_runs[@]}"; do
    run "$name" --config lite --lr 2e-3 --ema 0.999 --augment "${name#lite-}" &
done
for augment in flips none; do
    python3 benchmarks/unet_yardstick.py "$DATA" --minutes "$MINUTES" --steps 1000000 --balance-groups \
        --augment "$augment" --threads "$THREADS" --json "$OUT/unet-$augment.json" \
        --save "$OUT/unet-$augment.safetensors" >"$OUT/unet-$augment.log" 2>&1 &
done
wait
for name in "${lite_runs[@]}"; do
    octanet export "$RUNS/$name.safetensors" "$OUT/$name.safetensors" --half >>"$OUT/$name.log" 2>&1
done
ls -l "$RUNS" >"$OUT/runs.txt"
