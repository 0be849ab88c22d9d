"""The image, built here and run against the sandbox and moto on the host's loopback.

`make image-test` runs these tests (`make test` leaves them out: pyproject's addopts ignore
tests/image). No Docker engine runs on this kind of machine: buildah builds the Dockerfile
(chroot isolation, vfs storage) from a Debian base made by debootstrap (scripts/image-base.sh,
cached under ~/.cache/aion-ingest and in buildah's storage), and ``buildah run --isolation
chroot`` runs the image's entrypoint as its user. A chroot shares the host's network, so the
servers the tests start on 127.0.0.1 are reachable from inside. Needs root, buildah and
debootstrap (.ci/run installs them); without them the tests fail saying so, nothing is skipped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/aion-ingest:smoke"
BUILDAH = ["buildah", "--storage-driver", "vfs"]


def _buildah(*args: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        [*BUILDAH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"buildah {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.strip()


def _say(line: str) -> None:
    """Figures for the log of `make image-test` (pytest -s shows them)."""
    print(f"[image] {line}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Image:
    """A built image: its reference, its OCI config, and a container to run and read."""

    ref: str
    config: dict[str, Any]
    container: str
    rootfs: Path
    size_bytes: int

    def command(self, *argv: str, env: dict[str, str]) -> list[str]:
        """``argv`` in the container, as the image's user, with ``env`` only."""
        flags = ["--isolation", "chroot", "--user", self.config["User"]]
        for key, value in env.items():
            flags += ["--env", f"{key}={value}"]
        return [*BUILDAH, "run", *flags, self.container, "--", *argv]

    def run(
        self, *args: str, env: dict[str, str], timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """The image's entrypoint with ``args``, as the image's user, with ``env`` only."""
        return subprocess.run(
            self.command(*self.config["Entrypoint"], *args, env=env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _require_tools() -> None:
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the image test needs {' and '.join(missing)}: apt-get install {' '.join(missing)}"
            " (.ci/run does), and root",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail("the image test needs root (buildah's chroot isolation)", pytrace=False)


@pytest.fixture(scope="session")
def built() -> dict[str, str]:
    """Both targets built once per session with buildah: {target: image reference}."""
    _require_tools()
    start = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / "scripts" / "image-build.sh"), "runtime", "sandbox"],
        env={**os.environ, "ENGINE": "buildah", "BASE": "local", "IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, f"scripts/image-build.sh failed:\n{proc.stdout}\n{proc.stderr}"
    for line in proc.stderr.splitlines():
        if line.startswith(("image:", "image-base:")):
            _say(line)
    _say(f"base + wheelhouse + both targets: {time.monotonic() - start:.0f} s")
    return {"runtime": IMAGE, "sandbox": f"{IMAGE}-sandbox"}


def _open(ref: str) -> Iterator[Image]:
    inspect = json.loads(_buildah("inspect", "--type", "image", ref))
    config = inspect["OCIv1"]["config"]
    container = _buildah("from", "--pull-never", "--quiet", ref)
    try:
        rootfs = Path(_buildah("mount", container))
        # The unpacked size: every regular file once (a registry stores it gzip-compressed).
        size = sum(
            f.lstat().st_size for f in rootfs.rglob("*") if f.is_file() and not f.is_symlink()
        )
        yield Image(ref=ref, config=config, container=container, rootfs=rootfs, size_bytes=size)
    finally:
        _buildah("rm", container)


@pytest.fixture(scope="session")
def runtime(built: dict[str, str]) -> Iterator[Image]:
    yield from _open(built["runtime"])


@pytest.fixture(scope="session")
def sandbox_image(built: dict[str, str]) -> Iterator[Image]:
    yield from _open(built["sandbox"])
