#!/usr/bin/env bash
# The prepared device check for issue 4 (inference on a GPU), for a lent H100/H200: batch-1
# frames/s of `johnson` at 1920x1080 and 3840x2160, eager fp32 (baseline) vs the Stylizer in
# fp16 and bf16 with channels_last (and torch.compile), each output's PSNR against fp32.
# Targets: >= 240 frames/s at 1920x1080, >= 60 at 3840x2160, PSNR > 40 dB.
# Prints a markdown table; copies it to $OUT when set (the device tool's output folder).
#   bash scripts/gpu_inference_check.sh        # ~3 min on an H100 (compile ~1 min per precision)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
WORK="${OUT:-/tmp/fastnst-gpu-check}"
mkdir -p "$WORK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 400 "$PY" scripts/bench_inference.py --device cuda --models johnson --compile --repeats 50 \
    --json "$WORK/inference.json" | tee "$WORK/inference.md"
