#!/usr/bin/env bash
# Build the msxai image with buildah, which needs no Docker engine (`make image`). The base,
# Debian bookworm slim, is pulled when a registry is reachable; where none is, it is made
# locally from Debian's packages with mmdebstrap. Host-specific pip settings (a CA bundle, a
# local package index) come from IMAGE_BUILD_OPTIONS, e.g.
#   IMAGE_BUILD_OPTIONS="--build-arg PIP_CERT=/run/ca.crt -v /etc/ssl/certs/ca-certificates.crt:/run/ca.crt:ro"
# They reach only the build's RUN steps, never the image.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:?name the image, e.g. IMAGE=msxai/msxai:0.1.0 (make sets it)}
BASE=debian:bookworm-slim

if ! buildah inspect --type image "$BASE" >/dev/null 2>&1 \
    && ! timeout 60 buildah pull --quiet "docker.io/library/$BASE" >/dev/null 2>&1; then
    echo "making $BASE with mmdebstrap (no registry reachable)"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    mmdebstrap --quiet --variant=minbase bookworm "$rootfs/rootfs.tar"
    container=$(buildah from scratch)
    buildah add --quiet "$container" "$rootfs/rootfs.tar" /
    buildah config --cmd /bin/bash "$container"
    buildah commit --quiet --rm "$container" "$BASE" >/dev/null
fi

started=$(date +%s)
# shellcheck disable=SC2086
buildah bud --isolation chroot --pull=never --layers --tag "$IMAGE" --build-arg "VERSION=${IMAGE##*:}" \
    ${IMAGE_BUILD_OPTIONS:-} .
echo "built $IMAGE in $(($(date +%s) - started)) s"
