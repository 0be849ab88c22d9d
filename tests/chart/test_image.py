"""The Dockerfile: hadolint-clean, base pinned by digest, non-root numeric user, entrypoint,
labels, installs from the wheelhouse only. tests/image builds and runs it (`make image-test`).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
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


FAKE_DOCKER = """#!/usr/bin/env python3
import json, os, sys
# docker buildx imagetools inspect REF --format '{{json .Manifest}}', from a JSON file
registry = json.load(open(os.environ["FAKE_REGISTRY"]))
ref = sys.argv[4]
if ref not in registry:
    sys.exit(f"ERROR: {ref}: not found")
print(json.dumps(registry[ref]))
"""


def _index(digest: str, *platforms: str) -> dict[str, object]:
    """An image index as buildx describes it, with one manifest per "os/arch"."""
    manifests = []
    for n, platform in enumerate(platforms):
        os_name, arch = platform.split("/")[:2]
        entry = {"os": os_name, "architecture": arch}
        manifests.append({"digest": f"sha256:{n:064x}", "platform": entry})
    media = "application/vnd.oci.image.index.v1+json"
    return {"mediaType": media, "digest": digest, "manifests": manifests}


def _check_base(
    tmp_path: pathlib.Path, registry: dict[str, object], *args: str
) -> subprocess.CompletedProcess[str]:
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (tmp_path / "registry.json").write_text(json.dumps(registry))
    env = {**os.environ, "DOCKER": str(docker), "FAKE_REGISTRY": str(tmp_path / "registry.json")}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "base_image.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_base_pin_is_checked_against_the_registry(tmp_path: pathlib.Path) -> None:
    """scripts/base_image.py (the release workflow and a weekly one run it): the pinned
    digest must be the tag's multi-arch index; a tag that moved is a warning, or an error
    with --strict. The registry is a fake `docker` here (no registry access)."""
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)@(\S+)$", DOCKERFILE.read_text(), re.M)
    assert base is not None
    tag, digest = base.groups()
    pinned = _index(digest, "linux/amd64", "linux/arm64", "linux/arm/v7")
    current = _check_base(tmp_path, {f"{tag}@{digest}": pinned, tag: pinned}, "--strict")
    assert current.returncode == 0, current.stdout
    assert "the pin is current" in current.stdout
    newer = "sha256:" + "e" * 64
    moved = {f"{tag}@{digest}": pinned, tag: _index(newer, "linux/amd64", "linux/arm64")}
    warned = _check_base(tmp_path, moved)
    assert warned.returncode == 0 and warned.stdout.startswith("::warning::")
    assert f"ARG PYTHON_IMAGE={tag}@{newer}" in warned.stdout
    assert _check_base(tmp_path, moved, "--strict").stdout.startswith("::error::")
    one_arch = _check_base(
        tmp_path, {f"{tag}@{digest}": _index(digest, "linux/amd64"), tag: pinned}
    )
    assert one_arch.returncode == 1 and "missing linux/arm64" in one_arch.stdout
    unknown = _check_base(tmp_path, {tag: pinned})
    assert unknown.returncode == 1
    assert unknown.stdout.count("\n") == 1 and "the registry does not serve" in unknown.stdout
