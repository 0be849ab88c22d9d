"""The Dockerfile: hadolint-clean, pinned slim base, non-root numeric user, entrypoint, labels.

No Docker engine runs here, so the image is checked by structure; a CI with Docker builds it.
"""

from __future__ import annotations

import pathlib
import re
import subprocess

from tests.chart.conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_clean(tools: pathlib.Path) -> None:
    proc = subprocess.run(
        [str(tools / "hadolint"), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_structure() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1)), base.group(1)
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?$", text, re.M)
    assert len(stages) >= 2  # multi-stage
    assert all(image == "${PYTHON_IMAGE}" for image, _ in stages)
    final = text.rsplit("\nFROM ", 1)[1]
    assert "pip wheel" not in final and "apt-get" not in final  # no build tools in the final stage
    assert "COPY --from=venv /opt/aion-ingest /opt/aion-ingest" in final
    user = re.findall(r"^USER (\S+)$", final, re.M)
    assert user == ["10001:10001"]
    assert re.search(r'^ENTRYPOINT \["aion-ingest"\]$', final, re.M)
    for label in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in final, label
    assert "pip wheel --no-deps --wheel-dir /wheels ." in text  # installs the wheel it built
    ignore = (ROOT / ".dockerignore").read_text()
    assert ignore.splitlines()[1:4] == ["*", "!pyproject.toml", "!README.md"]
