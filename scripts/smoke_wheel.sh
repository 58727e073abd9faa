#!/usr/bin/env bash
# What the napari hub installs is what CI tests: build the sdist and, from it, the wheel; check that
# both carry the manifest and the bundled weights; install the wheel (not editable) in a fresh
# virtual environment and smoke-test it there, outside the checkout: the npe2 manifest validates,
# `octanet models` lists every bundled model from the installed package, and `octanet segment`
# segments a synthetic scan. Needs .venv (scripts/install.sh testing: it brings `build`).
#   bash scripts/smoke_wheel.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} NAPARI_OCTANET_MODELS="$work/library"

fail() { echo "smoke_wheel: $*" >&2; exit 1; }

echo "== build: sdist, then the wheel from the sdist"
.venv/bin/python -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "build failed"; }
sdist=$(ls "$work"/dist/napari_octanet-*.tar.gz)
wheel=$(ls "$work"/dist/napari_octanet-*.whl)
tar -tzf "$sdist" >"$work/sdist.txt"
.venv/bin/python -m zipfile -l "$wheel" >"$work/wheel.txt"
for file in napari.yaml $(cd src/napari_octanet && ls weights/*.safetensors); do
    grep -q "/src/napari_octanet/$file$" "$work/sdist.txt" || fail "the sdist lacks src/napari_octanet/$file"
    grep -q "^napari_octanet/$file " "$work/wheel.txt" || fail "the wheel lacks napari_octanet/$file"
done
echo "built $(basename "$sdist") and $(basename "$wheel")"

echo "== a fresh environment with the wheel"
python3 -m venv "$work/venv"
py=$work/venv/bin/python
$py -m pip install -q --upgrade pip
# The CPU build of torch first, as scripts/install.sh does, so that no dependency pulls a CUDA build.
$py -m pip install -q "torch==2.13.0" || $py -m pip install -q "torch>=2.1,<3"
$py -m pip install -q "$wheel"
cd "$work"  # away from the checkout: nothing may come from src/

site=$($py -c "import napari_octanet, pathlib; print(pathlib.Path(napari_octanet.__file__).parent)")
case $site in "$work"/venv/*) ;; *) fail "napari_octanet imports from $site, not from the fresh environment" ;; esac

echo "== npe2 validate"
"$work/venv/bin/npe2" validate napari-octanet

echo "== octanet models: every bundled model, from the installed package"
"$work/venv/bin/octanet" models | tee "$work/models.txt"
for name in $($py -c "from napari_octanet.core.registry import BUNDLED_MODELS; print(' '.join(m.name for m in BUNDLED_MODELS))"); do
    grep -Eq "^$name .*$site/weights/" "$work/models.txt" || fail "octanet models does not list the bundled model '$name' from $site"
done

echo "== octanet segment on a synthetic scan"
$py -c "import tifffile; from napari_octanet.core.synthetic import synthetic_octa; tifffile.imwrite('scan.tif', synthetic_octa(304)[0])"
"$work/venv/bin/octanet" segment scan.tif --out results --device cpu --threads 1
for result in scan_probability.tif scan_vessels.png scan_segment.json; do
    [ -s "results/$result" ] || fail "octanet segment wrote no results/$result"
done
echo "smoke_wheel: the installed wheel works"
