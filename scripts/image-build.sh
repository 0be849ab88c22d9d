#!/usr/bin/env bash
# Builds the image's targets (default: runtime) with whichever engine this machine has:
# docker (a running daemon), podman, or buildah (chroot isolation, vfs storage: no daemon,
# no user namespaces). Fills the wheelhouse first (scripts/wheelhouse.sh).
#
#   scripts/image-build.sh [TARGET...]     runtime -> $IMAGE, sandbox -> $IMAGE-sandbox
#
# Environment: IMAGE (default localhost/aion-ingest:dev), ENGINE (docker|podman|buildah, to
# choose), PYTHON_IMAGE (the base; default: the Dockerfile's digest-pinned python slim),
# BASE=local (the base from scripts/image-base.sh, for a machine that cannot pull it).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-localhost/aion-ingest:dev}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(runtime)

engine="${ENGINE:-}"
if [ -z "$engine" ]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
    elif command -v podman >/dev/null && podman info >/dev/null 2>&1; then engine=podman
    elif command -v buildah >/dev/null; then engine=buildah
    else
        echo "image: no container engine: start docker, or install podman or buildah (apt-get install buildah)" >&2
        exit 2
    fi
fi
case "$engine" in
    docker) build=(docker build) ;;
    podman) build=(podman build) ;;
    # vfs copies the whole tree for each layer it commits: one commit per stage (no --layers;
    # BUILDAH_LAYERS=true caches every step instead) is the faster build here.
    buildah) build=(buildah --storage-driver vfs bud --isolation chroot) ;;
    *) echo "image: ENGINE=$engine is not one of docker, podman, buildah" >&2; exit 2 ;;
esac

args=(--build-arg "VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)"
      --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)")
if [ "${BASE:-}" = local ]; then
    PYTHON_IMAGE="$(scripts/image-base.sh)"
fi
if [ -n "${PYTHON_IMAGE:-}" ]; then
    args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")
fi

start=$SECONDS
scripts/wheelhouse.sh
echo "image: wheelhouse took $((SECONDS - start)) s" >&2
for target in "${targets[@]}"; do
    case "$target" in
        runtime) tag="$IMAGE" ;;
        sandbox) tag="$IMAGE-sandbox" ;;
        *) echo "image: unknown target $target (runtime, sandbox)" >&2; exit 2 ;;
    esac
    start=$SECONDS
    "${build[@]}" "${args[@]}" --target "$target" --tag "$tag" .
    echo "image: $engine built $tag (target $target) in $((SECONDS - start)) s" >&2
done
