"""The Dockerfile: hadolint-clean, base pinned by digest, non-root numeric user, entrypoint,
labels, installs from the wheelhouse only. tests/image builds and runs it (`make image-test`).
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import tomllib

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


def _stages(text: str) -> dict[str, str]:
    """Each stage's text by name, in order (the default target is the last one)."""
    parts = re.split(r"^FROM ", text, flags=re.M)[1:]
    return {re.match(r"\S+ AS ([\w-]+)", p).group(1): p for p in parts}  # type: ignore[union-attr]


def test_structure() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.11[\d.]*-slim-bookworm@sha256:[0-9a-f]{64}", base.group(1))
    stages = _stages(text)
    assert list(stages) == ["venv", "venv-sandbox", "base", "sandbox", "runtime"]
    for name, stage in stages.items():  # each stage starts from the pinned base or a stage above
        parent = stage.split()[0]
        assert parent == "${PYTHON_IMAGE}" or parent in list(stages)[: list(stages).index(name)]
    # Installs come from the wheelhouse alone, hash-checked against the lock.
    assert "PIP_NO_INDEX=1" in stages["venv"]
    assert "COPY .wheelhouse/deps/ /wheels/" in stages["venv"]
    assert "COPY .wheelhouse/project/ /project/" in stages["venv"]
    assert "--require-hashes -r /requirements/main.txt" in stages["venv"]
    assert "--require-hashes -r /requirements/sandbox.txt" in stages["venv-sandbox"]
    final = stages["base"] + stages["sandbox"] + stages["runtime"]
    assert "pip" not in final and "apt-get" not in final  # no build tools in the final stages
    assert stages["runtime"].strip().endswith("COPY --from=venv /opt/aion-ingest /opt/aion-ingest")
    assert "COPY --from=venv-sandbox /opt/aion-ingest /opt/aion-ingest" in stages["sandbox"]
    assert re.findall(r"^USER (\S+)$", final, re.M) == ["10001:10001"]
    assert re.search(r'^ENTRYPOINT \["aion-ingest"\]$', final, re.M)
    for label in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{label}=" in final, label
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] != "#"]
    assert ignore == [
        "*",
        "!requirements/main.txt",
        "!requirements/sandbox.txt",
        "!.wheelhouse/",
    ]  # no sources in the build context


def _pins(path: pathlib.Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", path.read_text(), re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def _names(requirements: list[str]) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0]).lower()
        for r in requirements
    }


def test_lock_covers_the_project_and_agrees_with_itself() -> None:
    """requirements/main.txt pins every runtime dependency, sandbox.txt adds the sandbox extra
    at the same versions; each pin carries hashes (the image installs with --require-hashes).
    Regenerate with scripts/lock.sh after changing pyproject.toml's dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = _pins(ROOT / "requirements" / "main.txt")
    sandbox = _pins(ROOT / "requirements" / "sandbox.txt")
    assert _names(project["dependencies"]) <= set(main), "run scripts/lock.sh"
    assert _names(project["optional-dependencies"]["sandbox"]) <= set(sandbox), (
        "run scripts/lock.sh"
    )
    assert {name: sandbox.get(name) for name in main} == main  # one version of each package
    for path in ("main.txt", "sandbox.txt"):
        blocks = re.split(r"^(?=\S+==)", (ROOT / "requirements" / path).read_text(), flags=re.M)
        unhashed = [b.split()[0] for b in blocks[1:] if "--hash=sha256:" not in b]
        assert not unhashed, f"{path}: pins without hashes: {unhashed}"
