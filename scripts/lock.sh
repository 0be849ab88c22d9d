#!/usr/bin/env bash
# Regenerates the image's lock from pyproject.toml, with hashes, for CPython 3.11 on Linux:
#   requirements/sandbox.txt  the dependencies plus the sandbox extra (the sandbox target)
#   requirements/main.txt     the dependencies alone (the runtime target), at the same versions
# Uses uv (from PyPI, into .tools/uv). Run after changing pyproject.toml's dependencies;
# tests/chart/test_image.py checks that the lock covers them.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="uv==0.13.9"
PY="${PYTHON:-python3}"
if [ ! -x .tools/uv/bin/uv ]; then
    "$PY" -m pip install -q --target .tools/uv "$UV_VERSION"
fi
compile=(.tools/uv/bin/uv pip compile pyproject.toml --python-version 3.11 --python-platform linux
         --generate-hashes --no-header --annotation-style line --quiet)
"${compile[@]}" --extra sandbox -o requirements/sandbox.txt "$@"
"${compile[@]}" -c requirements/sandbox.txt -o requirements/main.txt
echo "lock: $(grep -c '==' requirements/main.txt) runtime and $(grep -c '==' requirements/sandbox.txt) sandbox pins"
