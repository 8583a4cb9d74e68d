#!/usr/bin/env bash
# The demo behind `make demo`: a synthetic cohort, then every msxai stage on it.
# Expects msxai and msxai-synth on PATH (the Makefile puts .venv/bin first).
set -euo pipefail
DEMO=${DEMO_DIR:-demo}
NPROCS=${NPROCS:-2}
BIDS="$DEMO/bids"
OUT="$DEMO/derivatives/msxai"
step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# tcmalloc makes the CNN about twice as fast on CPUs (benchmarks/bench_explain.py).
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
if [ -f "$TCMALLOC" ]; then export LD_PRELOAD="$TCMALLOC"; fi

step "Synthetic MS/HC cohort (FLAIR with skull, 1 mm, lesion masks) -> $BIDS"
[ -f "$BIDS/participants.tsv" ] || msxai-synth "$BIDS" --n-patients 10 --n-controls 10 --seed 42 --skull

step "Participant level with the shipped demo model: preprocessing, prediction, heatmaps -> $OUT"
msxai "$BIDS" "$OUT" participant --model demo --method lrp-epsilon gradient-input \
    -w "$DEMO/work" --nprocs "$NPROCS" --omp-nthreads 1 --lesion-fill

# A demonstration of the training stage only: 14 training images do not make a useful model.
step "Group level: train the CNN (1 short trial), SVM baselines, explain the holdout"
msxai "$BIDS" "$OUT" group --train --trials 1 --epochs 10 --batch-size 2 -w "$DEMO/work" \
    --nprocs "$NPROCS" --skip-bids-validation
column -t -s $'\t' "$OUT/group/performance.tsv"

step "Group level: analyses of every model's heatmaps (mean maps, regions, lesions), group report"
msxai "$BIDS" "$OUT" group -w "$DEMO/work" --skip-bids-validation

step "The demo model on this cohort, which it has never seen"
column -t -s $'\t' "$OUT/group/model-demomodel_classification.tsv"
column -t -s $'\t' "$OUT/group/model-demomodel_desc-lrpepsilon_lesions.tsv"

step "Participant reports again: every model's heatmaps (the holdout's too) on one colour scale"
msxai "$BIDS" "$OUT" participant --reports-only --skip-bids-validation

step "Outputs"
find "$OUT" -type f -not -path '*/logs/*' -not -path '*/figures/*' | sort

step "Reports (open them in a browser)"
echo "participant: $OUT/sub-01.html (one per participant: $OUT/sub-*.html)"
echo "group:       $OUT/group.html"
echo "methods:     $OUT/logs/CITATION.md"
