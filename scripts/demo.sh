#!/usr/bin/env bash
# The demo behind `make demo`: a synthetic cohort, then every msxai stage on it.
# Expects msxai and msxai-synth on PATH (the Makefile puts .venv/bin first).
set -euo pipefail
DEMO=${DEMO_DIR:-demo}
NPROCS=${NPROCS:-2}
BIDS="$DEMO/bids"
OUT="$DEMO/derivatives/msxai"
step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

step "Synthetic MS/HC cohort (FLAIR, skull on) -> $BIDS"
[ -f "$BIDS/participants.tsv" ] || msxai-synth "$BIDS" --n-patients 6 --n-controls 6 --seed 42 --skull

step "Participant level: preprocessing -> $OUT"
msxai "$BIDS" "$OUT" participant -w "$DEMO/work" --nprocs "$NPROCS" --omp-nthreads 1 --lesion-fill

step "Outputs"
find "$OUT" -type f -not -path '*/logs/*' | sort
