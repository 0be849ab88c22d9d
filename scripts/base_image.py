#!/usr/bin/env python3
"""Check the Dockerfile's pinned base image against the registry: `python scripts/base_image.py`.

The Dockerfile pins its base as ``ARG PYTHON_IMAGE=TAG@sha256:DIGEST``. A machine without
registry access (the one the pin was written on) cannot tell whether that digest is what the
tag named, nor whether the tag has moved since (Docker rebuilds python images for every
Debian or CPython fix). This script, run where the registry answers (the release workflow,
and weekly by .github/workflows/base-image.yml), asks it through
``docker buildx imagetools inspect``:

1. ``TAG@DIGEST`` must exist and be a multi-platform index holding linux/amd64 and
   linux/arm64 (the release builds both): otherwise exit 1, the build would fail or be
   single-arch.
2. ``TAG`` now: when it names another digest the tag has moved (a newer base). A warning,
   or with ``--strict`` an error (exit 1), printing the line to put in the Dockerfile.

Messages are GitHub annotations (``::error::``, ``::warning::``), plain text elsewhere.
``DOCKER`` names the docker CLI (default ``docker``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLATFORMS = ("linux/amd64", "linux/arm64")
_PIN = re.compile(r"^ARG PYTHON_IMAGE=(?P<tag>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$", re.M)


class Refused(Exception):
    """The pin is unusable: the message says why."""


def pinned(dockerfile: pathlib.Path) -> tuple[str, str]:
    """(tag, digest) of the Dockerfile's ``ARG PYTHON_IMAGE=TAG@DIGEST``."""
    found = _PIN.search(dockerfile.read_text())
    if found is None:
        raise Refused(f"{dockerfile}: no 'ARG PYTHON_IMAGE=TAG@sha256:DIGEST' line")
    return found["tag"], found["digest"]


def inspect(ref: str) -> dict[str, Any]:
    """The registry's manifest (or index) of ``ref``, as buildx describes it."""
    docker = os.environ.get("DOCKER", "docker")
    cmd = [docker, "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise Refused(f"the registry does not serve {ref}: {said}")
    try:
        manifest: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise Refused(f"{docker} buildx imagetools inspect {ref}: not JSON") from None
    return manifest


def platforms(index: dict[str, Any]) -> set[str]:
    return {
        f"{m['platform'].get('os')}/{m['platform'].get('architecture')}"
        for m in index.get("manifests") or []
        if m.get("platform")
    }


def check(dockerfile: pathlib.Path, strict: bool) -> list[tuple[str, str]]:
    """(level, message) pairs; level "error" fails the check."""
    tag, digest = pinned(dockerfile)
    index = inspect(f"{tag}@{digest}")
    missing = [p for p in PLATFORMS if p not in platforms(index)]
    if missing:
        raise Refused(
            f"{tag}@{digest} is not an index for {', '.join(PLATFORMS)} "
            f"(missing {', '.join(missing)}): pin the tag's multi-platform index digest"
        )
    now = inspect(tag).get("digest")
    if now == digest:
        return [("notice", f"{tag} is still {digest}: the pin is current")]
    level = "error" if strict else "warning"
    return [
        (
            level,
            f"{tag} has moved to {now} (pinned: {digest}): a newer base; bump the Dockerfile's "
            f"line to 'ARG PYTHON_IMAGE={tag}@{now}' and run make image-test",
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strict", action="store_true", help="a moved tag is an error")
    parser.add_argument("--dockerfile", type=pathlib.Path, default=ROOT / "Dockerfile")
    args = parser.parse_args(argv)
    try:
        results = check(args.dockerfile, args.strict)
    except Refused as exc:
        results = [("error", str(exc))]
    for level, message in results:
        print(f"::{level}::{message}")
    return 1 if any(level == "error" for level, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
