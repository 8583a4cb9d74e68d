#!/usr/bin/env bash
# Build the msxai image with buildah, which needs no Docker engine (`make image`). The base,
# Debian bookworm slim, is pulled when a registry is reachable; where none is, it is made
# locally from Debian's packages with mmdebstrap. Host-specific pip settings (a CA bundle, a
# local package index) are a pip.conf mounted into the build's RUN steps by IMAGE_BUILD_OPTIONS,
# e.g. (pip.conf: "[global]" and "cert = /run/ca.crt")
#   IMAGE_BUILD_OPTIONS="-v $PWD/pip.conf:/etc/pip.conf:ro -v /etc/ssl/certs/ca-certificates.crt:/run/ca.crt:ro"
# Mounts reach only the RUN steps, never the image. The image that held the name before is
# deleted after the build, so that rebuilds do not pile up 7 GB images.
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

previous=$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
started=$(date +%s)
# shellcheck disable=SC2086
buildah bud --isolation chroot --pull=never --tag "$IMAGE" --build-arg "VERSION=${IMAGE##*:}" \
    ${IMAGE_BUILD_OPTIONS:-} .
echo "built $IMAGE in $(($(date +%s) - started)) s"
if [ -n "$previous" ] && [ "$previous" != "$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE")" ]; then
    buildah rmi "$previous" >/dev/null 2>&1 || echo "the previous $IMAGE ($previous) is still in use; kept"
fi
