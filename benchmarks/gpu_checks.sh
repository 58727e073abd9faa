#!/usr/bin/env bash
# What a GPU buys, in one call: the inference tests on CUDA, CUDA inference speed (batch 1 and 16,
# float16 autocast), then the quality issue's training runs side by side on the one GPU, each
# with the same wall-clock budget, each model scored on every val split (paper protocol).
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
run lite-full --config lite --lr 2e-3 --augment full &
run lite-flips --config lite --lr 2e-3 --augment flips &
run lite-b16 --config lite --lr 2e-3 --augment flips --batch-size 16 &
run paper-full --config paper --lr 2e-3 --augment full &
python3 benchmarks/unet_yardstick.py "$DATA" --minutes "$MINUTES" --steps 1000000 --balance-groups \
    --threads "$THREADS" --json "$OUT/unet.json" >"$OUT/unet.log" 2>&1 &
wait
for name in lite-full lite-flips lite-b16; do
    octanet export "$RUNS/$name.safetensors" "$OUT/$name.safetensors" --half >>"$OUT/$name.log" 2>&1
done
ls -l "$RUNS" >"$OUT/runs.txt"
