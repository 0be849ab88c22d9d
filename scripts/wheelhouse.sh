#!/usr/bin/env bash
# Fills .wheelhouse/ for the image build: the project's own wheel (project/) and every
# dependency (deps/) in the lock (requirements/sandbox.txt, a superset of requirements/main.txt), as hash-checked binary
# wheels for CPython 3.11 on each Linux platform asked for. The Dockerfile installs from it with
# --no-index, so the build needs no network and the same lock gives the same venv.
#
#   scripts/wheelhouse.sh                          # this machine's architecture
#   scripts/wheelhouse.sh linux/amd64 linux/arm64  # a multi-arch build (the release workflow)
#
# Needs Python 3 and pip (PyPI). Regenerate the lock with scripts/lock.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.wheelhouse
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
platforms=("$@")
if [ ${#platforms[@]} -eq 0 ]; then
    case "$(uname -m)" in
        x86_64) platforms=(linux/amd64) ;;
        aarch64|arm64) platforms=(linux/arm64) ;;  # arm64: macOS (Docker Desktop builds linux/arm64)
        *) echo "wheelhouse: unsupported architecture $(uname -m)" >&2; exit 2 ;;
    esac
fi

# The dependencies' wheels are kept while the lock and the platforms stay the same (a stamp);
# the project's own wheel is made anew each time.
quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }  # pip.conf noise
stamp="$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())' \
         < <(cat requirements/sandbox.txt; echo "${platforms[*]}"))"
if [ "$(cat "$OUT/deps/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$OUT.part"
    mkdir -p "$OUT.part"
    for platform in "${platforms[@]}"; do
        case "$platform" in
            linux/amd64) arch=x86_64 ;;
            linux/arm64) arch=aarch64 ;;
            *) echo "wheelhouse: unsupported platform $platform (linux/amd64, linux/arm64)" >&2; exit 2 ;;
        esac
        # Every manylinux level that bookworm's glibc (2.36) runs.
        tags=(--platform "manylinux2014_$arch")
        for minor in $(seq 17 36); do tags+=(--platform "manylinux_2_${minor}_$arch"); done
        "$PY" -m pip download --quiet --disable-pip-version-check --require-hashes \
            --only-binary=:all: --no-deps --python-version 3.11 --implementation cp --abi cp311 \
            "${tags[@]}" --dest "$OUT.part" -r requirements/sandbox.txt 2> >(quiet)
    done
    echo "$stamp" > "$OUT.part/.stamp"
    rm -rf "$OUT/deps"
    mkdir -p "$OUT"
    mv "$OUT.part" "$OUT/deps"
fi
rm -rf "$OUT/project"
# The project's wheel, with file dates from the last commit (a reproducible wheel).
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || date +%s)" \
    "$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$OUT/project" . 2> >(quiet)
echo "wheelhouse: $(find "$OUT" -name '*.whl' | wc -l) wheels for ${platforms[*]} in $OUT/"
