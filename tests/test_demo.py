"""`make demo` runs in the suite too (smaller), so it cannot rot; and twice in a row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_runs_end_to_end_twice(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "AIONVISION_"))}
    command = [
        sys.executable, "-m", "ingest.demo", "--objects", "120", "--big-mib", "0",
        "--workdir", str(tmp_path / "demo"),
    ]  # fmt: skip
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=280)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-4000:]
        assert "each distinct supported file once: True" in output
        assert "Complete: 4/4 indexes complete" in output
        assert "report.csv" in output
        assert "Traceback" not in output
    # The closing hints run as printed, from a shell whose PATH lacks the venv (as after
    # `make demo`, where aion-ingest sits in .venv/bin).
    hints = [line.split("   #")[0] for line in done.stdout.splitlines() if "   # " in line]
    assert len(hints) == 3, done.stdout[-3000:]
    bare = dict(env, PATH="/usr/bin:/bin")
    for hint in hints:
        ran = subprocess.run(hint, shell=True, env=bare, capture_output=True, text=True)
        assert ran.returncode == 0, (hint, ran.stderr[-2000:])
    assert "Complete (0 failed)" in ran.stdout  # `runs` lists the demo's run
