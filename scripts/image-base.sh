#!/usr/bin/env bash
# Makes the local base image for `make image` on a machine without a registry to pull from:
# Debian bookworm (debootstrap, minbase) with python3, python3-venv, python3-pip and `python`
# pointing at python3, committed into buildah's storage as $BASE_IMAGE. Prints its reference.
#
# Cached twice on one machine: the root filesystem as a tarball under the cache dir
# (${AION_INGEST_CACHE:-${XDG_CACHE_HOME:-~/.cache}/aion-ingest}), and the committed image in
# buildah's storage; a re-run that finds the image does nothing. Needs root and debootstrap.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-localhost/aion-ingest-base:bookworm-python3}"
CACHE="${AION_INGEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/aion-ingest}"
ROOTFS_TAR="$CACHE/bookworm-python3.tar"
BUILDAH=(buildah --storage-driver vfs)

if "${BUILDAH[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "$BASE_IMAGE"
    exit 0
fi

if [ ! -s "$ROOTFS_TAR" ]; then
    command -v debootstrap >/dev/null || { echo "image-base: debootstrap is missing (apt-get install debootstrap)" >&2; exit 2; }
    mkdir -p "$CACHE"
    root="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    start=$SECONDS
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3 \
        bookworm "$root" >&2
    # No package lists or downloaded .debs in the base.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
    tar -C "$root" --numeric-owner -cf "$ROOTFS_TAR.part" .
    mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
    echo "image-base: debootstrap took $((SECONDS - start)) s" >&2
fi

ctr="$("${BUILDAH[@]}" from scratch)"
"${BUILDAH[@]}" add "$ctr" "$ROOTFS_TAR" / >/dev/null
"${BUILDAH[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr"
"${BUILDAH[@]}" commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
echo "$BASE_IMAGE"
