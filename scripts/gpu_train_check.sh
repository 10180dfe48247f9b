#!/usr/bin/env bash
# The one prepared device check for issue 6 (training speed), for a lent H100/H200:
#   1. throughput of the fastnst step (imagenet_mini through the real loader with the decoded
#      cache, bf16, channels_last, torch.compile) vs the eager fp32 baseline, batch 4 and 16;
#   2. bf16 vs fp32 validation loss after the same number of images (target: within 2%).
# Prints markdown tables; copies them to $OUT when set (the device tool's output folder).
#   FASTNST_DATA=/path/to/data bash scripts/gpu_train_check.sh
# Budget: ~8 min on an H100 (cache build ~1 min, bench ~2 min, two precision runs ~4 min).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export FASTNST_DATA="${FASTNST_DATA:-$PWD/shared/data}"
WORK="${OUT:-/tmp/fastnst-gpu-check}"
PREC_STEPS="${PREC_STEPS:-1500}"   # x batch 16 = 24k images per precision
mkdir -p "$WORK"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" - <<'PY'
import torch, pytorch_lightning, hydra, kornia  # noqa: F401  fails early when the env lacks them
print("torch", torch.__version__, "| cuda", torch.version.cuda, "|", torch.cuda.get_device_name())
PY
test -d "$FASTNST_DATA/imagenet-mini/train" || { echo "no imagenet-mini under FASTNST_DATA=$FASTNST_DATA" >&2; exit 2; }

# 1. throughput (the cache is built on the first run and reused by the others)
timeout 330 "$PY" scripts/bench_train.py --device cuda --data imagenet_mini --batch 4 16 \
    --steps 60 --warmup 25 --compile --cache-dir "$WORK/cache" | tee "$WORK/bench.md"
timeout 60 "$PY" scripts/bench_train.py --device cuda --data imagenet_mini --batch 16 --steps 40 --warmup 10 \
    --cache-dir "$WORK/cache" --json | tee "$WORK/bench_nocompile.json"

# 2. bf16 vs fp32 after the same images (same seed, data order and crops)
timeout 330 "$PY" scripts/bench_train.py --device cuda --data imagenet_mini --batch 16 --steps 10 --warmup 5 \
    --cache-dir "$WORK/cache" --compare-precision "$PREC_STEPS" | tee "$WORK/precision.md"
rm -rf "$WORK/cache"  # GBs: nothing to bring back
