#!/usr/bin/env bash
# `make image-test`: inside the built image, as an arbitrary user id, print the version, write
# a tiny synthetic cohort, run the participant level with the shipped demo model, and check its
# outputs; then print the image's size. Runs with buildah (no Docker engine needed).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:?name the image, e.g. IMAGE=msxai/msxai:0.1.0 (make sets it)}
data=$(mktemp -d)
chmod 0777 "$data"
container=$(buildah from --pull=never "$IMAGE")
trap 'buildah rm "$container" >/dev/null; rm -rf "$data"' EXIT
in_image() { buildah run --isolation chroot --user 4321:4321 -v "$data:/data" "$container" -- "$@"; }

in_image msxai --version
in_image msxai-synth /data/bids --n-patients 1 --n-controls 1 --seed 3 --native-resolution 2 -q
started=$(date +%s)
in_image msxai /data/bids /data/out participant --model demo --skip-bids-validation --nprocs 2
echo "participant level of 2 participants in the image: $(($(date +%s) - started)) s"
(cd "$data/out" && find . -type f -not -path './logs/*' | sort)

space=space-MNI152NLin2009cAsym_res-cnn2mm
for label in 01 02; do
    for file in "sub-$label/anat/sub-${label}_${space}_desc-preproc_FLAIR.nii.gz" \
        "sub-$label/anat/sub-${label}_${space}_model-demomodel_stat-relevance_desc-lrpepsilon_statmap.nii.gz" \
        "sub-$label/anat/sub-${label}_model-demomodel_predictions.tsv" \
        "sub-$label.html"; do
        [ -s "$data/out/$file" ] || { echo "missing in the image's outputs: $file" >&2; exit 1; }
    done
done
grep -q '"Container"' "$data/out/dataset_description.json" \
    || { echo "dataset_description.json does not name the container" >&2; exit 1; }
echo "image $IMAGE: $(buildah images --format '{{.Size}}' "$IMAGE")"
