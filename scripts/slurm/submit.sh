#!/usr/bin/env bash
# msxai on a SLURM cluster: one array task per participant, all into one OUTPUT_DIR, then the
# group level as a job that starts when every task has ended (also when some failed: their
# crash files are in OUTPUT_DIR/logs and the group level uses the others).
#   scripts/slurm/submit.sh BIDS_DIR OUTPUT_DIR [participant options] [-- group options]
#   scripts/slurm/submit.sh /data/bids /data/out --model demo -- --audit
# At most MSXAI_MAX_TASKS (default 50) tasks run at once. Prints the two job ids.
set -euo pipefail
usage="usage: submit.sh BIDS_DIR OUTPUT_DIR [participant options] [-- group options]"
here=$(cd "$(dirname "$0")" && pwd)
bids_dir=${1:?$usage}
output_dir=${2:?$usage}
shift 2
participant_options=()
while (($#)) && [ "$1" != "--" ]; do
    participant_options+=("$1")
    shift
done
[ "${1:-}" = "--" ] && shift
n=$(find "$bids_dir" -mindepth 1 -maxdepth 1 -type d -name 'sub-*' | wc -l)
if ((n == 0)); then
    echo "no sub-* folder in $bids_dir" >&2
    exit 66
fi
mkdir -p "$output_dir"
array=$(sbatch --parsable --array="1-$n%${MSXAI_MAX_TASKS:-50}" \
    "$here/msxai_participant.sbatch" "$bids_dir" "$output_dir" "${participant_options[@]}")
group=$(sbatch --parsable --dependency="afterany:${array%%;*}" \
    "$here/msxai_group.sbatch" "$bids_dir" "$output_dir" "$@")
echo "participant array: $array ($n tasks); group level: $group"
