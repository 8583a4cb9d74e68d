#!/usr/bin/env bash
# The CUDA paths of msxai in one run (about 5 minutes on one GPU): LRP on the GPU against the
# CPU, batched explanations, a fine-tuning epoch and two-process DDP. Arguments go to
# gpu_check.py (`--quick` for a CPU, `--only explain train`, `--help`). Needs msxai's
# dependencies importable; run it from anywhere.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# On CPUs tcmalloc halves the CNN's time (benchmarks/bench_explain.py); the image preloads it.
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
if [ -f "$TCMALLOC" ] && [ -z "${LD_PRELOAD:-}" ]; then export LD_PRELOAD="$TCMALLOC"; fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
lscpu | sed -n 's/^Model name: *//p'
exec "${PYTHON:-python3}" "$ROOT/benchmarks/gpu_check.py" "$@"
