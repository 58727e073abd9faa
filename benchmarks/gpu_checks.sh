#!/usr/bin/env bash
# What a GPU buys (the quality issue's item 5), sized for one call of a lent device machine (one
# command of at most 10 minutes, 15 minutes of device time in all, at most 8 files back).
#
#   bash benchmarks/gpu_checks.sh DATA OUT [MINUTES]
#
# Three runs share the GPU, each for MINUTES (default 4) from scratch, none with augmentation
# (which bought `lite` and the U-Net 0.006-0.007 group-mean val Dice at 512 CPU steps; docs/training.md: No
# augmentation from scratch), the three sets drawn equally often:
#   lite   256 px crops, lr 2e-3, EMA 0.999, for 3/4 of MINUTES; then whole images with the
#          batch-norm statistics frozen, lr 1e-3, EMA, for the last 1/4 (the preset's last phases)
#   paper  256 px crops, lr 2e-3, EMA 0.999 (71.7 M parameters)
#   unet   the U-Net yardstick's own recipe (benchmarks/unet_yardstick.py), no checkpoint selection
# Each model is then scored on every val split (paper protocol), and the CUDA inference tests run.
#
# DATA is a folder laid out like octa-dev (<set>/<split>/{image,label}; every split named train* is
# trained on, so leave ROSSA/train_sam out of it) or an archive from benchmarks/gpu_data.py. The
# folder does not fit the device's 64 MiB; the archive does with ROSSA's val split cut to 30 scans,
# so the val figures printed there are on 10 / 20 / 30 scans. From this machine:
#   python benchmarks/gpu_data.py pack ../shared/data/octa-dev .gpu-data/data.tar --max-val 30
#   device run, carry [".gpu-data"], timeout_s 600 (about 7 minutes with MINUTES 4):
#     bash benchmarks/gpu_checks.sh .gpu-data/data.tar $OUT 4
# OUT gets results.tar.gz (logs, JSON scores, the machine) and the lite and U-Net models, 4 files.
# Score those here on the whole val splits (paper's weights, 140 MB, stay there):
#   octanet evaluate DATA/SET --split val --model lite-b.safetensors --json
#   python benchmarks/unet_yardstick.py DATA --load unet.safetensors
# Runs without installing the package (PYTHONPATH=src): the device image's torch, scikit-image,
# safetensors, tifffile, pillow and tqdm are enough. SMOKE=1 shrinks every run to a few steps on
# crops of 64 px: a check of this script on any machine, whose figures mean nothing.
set -uo pipefail
DATA=$1
OUT=$2
MINUTES=${3:-4}
RUNS=${RUNS:-/tmp/octanet-runs}
THREADS=${THREADS:-4}
mkdir -p "$OUT" "$RUNS/logs"
LOGS=$RUNS/logs
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 NAPARI_OCTANET_MODELS=$RUNS/library
octanet() { python3 -m napari_octanet.cli "$@"; }
minutes() { python3 -c "print(round($MINUTES * $1, 3))"; }  # a share of MINUTES

if [[ -f $DATA ]]; then
    python3 benchmarks/gpu_data.py unpack "$DATA" "$RUNS/data" || exit 1
    DATA=$RUNS/data
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; nproc
  for split in "$DATA"/*/*/; do echo "$split: $(ls "$split/image" | wc -l) images"; done; } >"$LOGS/machine.txt" 2>&1

size=(--samples-per-epoch 1024 --crop-size 256)
[[ ${SMOKE:-0} == 1 ]] && size=(--samples-per-epoch 24 --crop-size 64 --epochs 1 --fine-epochs 1)
recipe=(--layout pairs --split train --val-split val --epochs 1000 --fine-epochs 200 --batch-size 8
        --balance-groups --patience 1000 --seed 0 --threads "$THREADS" --loss dice_bce --augment none
        --ema 0.999 --overwrite "${size[@]}")
train() {  # NAME MINUTES [extra octanet train options]
    local name=$1 budget=$2; shift 2
    octanet train "$DATA" "${recipe[@]}" --time-budget "$budget" --out "$RUNS/$name.safetensors" "$@" \
        >"$LOGS/$name.log" 2>&1
}
{ train lite-a "$(minutes 0.75)" --config lite --init scratch --lr 2e-3
  train lite-b "$(minutes 0.25)" --config lite --init "$RUNS/lite-a.safetensors" --lr 1e-3 \
      --crop-size whole --freeze-batch-norm; } &
train paper "$MINUTES" --config paper --init scratch --lr 2e-3 &
unet_size=(--steps 1000000 --minutes "$MINUTES")
[[ ${SMOKE:-0} == 1 ]] && unet_size=(--steps 2 --minutes 1 --crop-size 64)
python3 benchmarks/unet_yardstick.py "$DATA" "${unet_size[@]}" --balance-groups --augment none \
    --threads "$THREADS" --json "$LOGS/unet.json" --save "$OUT/unet.safetensors" >"$LOGS/unet.log" 2>&1 &
wait

for name in lite-a lite-b paper; do
    for set in "$DATA"/*/; do
        octanet evaluate "$set" --split val --model "$RUNS/$name.safetensors" --json \
            >"$LOGS/$name-$(basename "$set").json" 2>>"$LOGS/$name.log"
    done
done
for name in lite-a lite-b; do
    octanet export "$RUNS/$name.safetensors" "$OUT/$name.safetensors" --half >>"$LOGS/$name.log" 2>&1
done
python3 -m pytest -q -p no:cacheprovider tests/core/test_inference.py >"$LOGS/pytest.txt" 2>&1
ls -l "$RUNS" >"$LOGS/runs.txt"
tar -czf "$OUT/results.tar.gz" -C "$RUNS" logs
python3 - "$LOGS" <<'EOF'
# One line per model and val split: Dice and AUC, as the output's tail shows them.
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    try:
        scores = json.loads(path.read_text())
    except ValueError:
        print(f"{path.stem}: no scores (see its log)")
        continue
    # octanet evaluate writes one split a file, the U-Net yardstick every split in one
    per_split = {f"{path.stem} {name}": s for name, s in scores["val"].items()} if "val" in scores else {path.stem: scores}
    for name, split in per_split.items():
        print(f"{name}: Dice {split['dice']:.4f} AUC {split['auc']:.4f}")
EOF
