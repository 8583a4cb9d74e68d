#!/usr/bin/env bash
# The transfer-learning experiment of the paper on synthetic cohorts, with wall times:
#   1. an AD/CN T1w cohort: preprocessing, then the CNN trained from scratch (pre-training);
#   2. an MS/HC FLAIR cohort (the paper's 76 + 71 by default): preprocessing, then the CNN from
#      scratch with both SVM baselines, and the pre-trained CNN fine-tuned on the same split.
# Prints the resulting Table 3. Each finished stage leaves a marker, so a rerun resumes.
# Budgets come from the environment; the paper's protocol is TRIALS=10 and no EPOCHS cap.
# Expects msxai and msxai-synth on PATH, e.g. `PATH=.venv/bin:$PATH benchmarks/bench_transfer.sh`.
set -euo pipefail
ROOT=${BENCH_DIR:-bench-transfer}
N_AD=${N_AD:-60} N_CN=${N_CN:-60} N_MS=${N_MS:-76} N_HC=${N_HC:-71}
TRIALS=${TRIALS:-3} NPROCS=${NPROCS:-2}
CAP=()
[ -n "${EPOCHS:-}" ] && CAP+=(--epochs "$EPOCHS")
[ -n "${PATIENCE:-}" ] && CAP+=(--patience "$PATIENCE")
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
if [ -f "$TCMALLOC" ]; then export LD_PRELOAD="$TCMALLOC"; fi
mkdir -p "$ROOT"
echo '{"flair": {"suffix": "T1w"}}' > "$ROOT/t1w.json"
PREP=(--nprocs "$NPROCS" --omp-nthreads 1 --seed 0)  # one thread per participant
TRAIN=(--nprocs "$NPROCS" --seed 0)  # one process with NPROCS threads

stage() {  # stage NAME COMMAND...: run once, log its wall time
    local name=$1; shift
    if [ -f "$ROOT/.done-$name" ]; then echo "==> $name: done before"; return; fi
    echo "==> [$(date +%H:%M:%S)] $name: $*"
    local start=$SECONDS
    "$@"
    echo "$name $((SECONDS - start))" >> "$ROOT/wall_seconds.txt"
    touch "$ROOT/.done-$name"
}

stage synth-ad msxai-synth "$ROOT/ad" --task ad --contrast T1w \
    --n-patients "$N_AD" --n-controls "$N_CN" --seed 921 -q
stage synth-ms msxai-synth "$ROOT/ms" --task ms --n-patients "$N_MS" --n-controls "$N_HC" --seed 2019 -q
stage preproc-ad msxai "$ROOT/ad" "$ROOT/ad-out" participant -w "$ROOT/work-ad" "${PREP[@]}" \
    --bids-filter-file "$ROOT/t1w.json"
stage preproc-ms msxai "$ROOT/ms" "$ROOT/ms-out" participant -w "$ROOT/work-ms" "${PREP[@]}"
stage pretrain msxai "$ROOT/ad" "$ROOT/ad-out" group --train --trials 1 "${CAP[@]}" \
    --bids-filter-file "$ROOT/t1w.json" --positive-label AD --negative-label CN \
    --skip-baselines --skip-bids-validation -w "$ROOT/work-ad" "${TRAIN[@]}"
stage scratch msxai "$ROOT/ms" "$ROOT/ms-out" group --train --trials "$TRIALS" "${CAP[@]}" \
    --skip-bids-validation -w "$ROOT/work-ms" "${TRAIN[@]}"
stage finetune msxai "$ROOT/ms" "$ROOT/ms-out" group --train --trials "$TRIALS" "${CAP[@]}" \
    --init-model "$ROOT/ad-out/models/cnn-scratch" --skip-baselines \
    --skip-bids-validation -w "$ROOT/work-ms" "${TRAIN[@]}"

echo "==> Pre-training (AD vs CN, T1w)"
column -t -s $'\t' "$ROOT/ad-out/group/performance.tsv"
echo "==> Table 3 (MS vs HC, FLAIR)"
column -t -s $'\t' "$ROOT/ms-out/group/performance.tsv"
echo "==> Wall time per stage (s)"
cat "$ROOT/wall_seconds.txt"
