"""The fork server: its children are the processes ``python`` would have started.

Each behaviour is compared with a real ``python`` subprocess running the same script,
or asserted outright (session, signals, the server's death). tests/launch/
test_local_launcher.py runs the launcher's own tests through the server too.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.launch.forkserver import ForkServer, runnable

pytestmark = pytest.mark.timeout(60)

# Reports what a process looks like from inside, then exits as told by argv[2].
PROBE = r"""
import json, os, signal, sys
out = {
    "sigint": str(signal.getsignal(signal.SIGINT)),
    "sigterm": str(signal.getsignal(signal.SIGTERM)),
    "sigpipe": str(signal.getsignal(signal.SIGPIPE)),
    "argv": sys.argv,
    "env": dict(os.environ),
    "own_session": os.getsid(0) == os.getpid(),
    "stdin": os.readlink("/proc/self/fd/0"),
    "main": __name__,
    "path0": sys.path[0],
}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
print("to stdout")
print("to stderr", file=sys.stderr)
how = sys.argv[2]
if how == "raise":
    raise RuntimeError("boom")
if how == "text":
    sys.exit("a message")
if how == "wait":
    open(sys.argv[1] + ".ready", "w").close()
    import signal
    signal.pause()
sys.exit(int(how))
"""


@pytest.fixture
async def server() -> ForkServer:
    server = await ForkServer.start(["json"])
    yield server
    await server.aclose()


async def _ready(ready: Path) -> None:
    """The probe waits for a signal: its ready file (another process: the only event)."""
    while not ready.exists():  # noqa: ASYNC110, ASYNC240
        await asyncio.sleep(0.01)


def _probe(tmp_path: Path) -> Path:
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    return script


@pytest.mark.parametrize(("how", "code"), [("0", 0), ("3", 3), ("raise", 1), ("text", 1)])
async def test_a_child_is_the_process_python_would_start(
    tmp_path: Path, server: ForkServer, how: str, code: int
) -> None:
    script = _probe(tmp_path)
    # LC_ALL set: python itself adds LC_CTYPE to a C locale's environment (PEP 538)
    env = {"ONLY": "this", "PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}
    seen: dict[str, dict[str, object]] = {}
    logs: dict[str, str] = {}
    for way in ("python", "fork"):
        report, log = tmp_path / f"{way}.json", tmp_path / f"{way}.log"
        argv = [sys.executable, str(script), str(report), how]
        if way == "python":
            with log.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    *argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                    start_new_session=True,
                )  # fmt: skip
            got = await proc.wait()
        else:
            got = await (await server.spawn(argv, env, str(log))).wait()
        assert got == code, way
        seen[way] = json.loads(report.read_text())
        seen[way]["argv"] = [a.replace(way, "WAY") for a in seen[way]["argv"]]  # type: ignore[union-attr]
        logs[way] = log.read_text()
    assert seen["fork"] == seen["python"]
    assert seen["fork"]["own_session"] is True
    assert seen["fork"]["stdin"] == "/dev/null"
    assert seen["fork"]["env"] == env
    # same lines; the traceback's file paths and the order of the two streams aside
    assert sorted(logs["fork"].splitlines()) == sorted(logs["python"].splitlines())


async def test_a_module_runs_as_python_minus_m(tmp_path: Path, server: ForkServer) -> None:
    argv = [sys.executable, "-m", "ingest", "--version"]
    real = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    said, _ = await real.communicate()
    log = tmp_path / "fork.log"
    code = await (await server.spawn(argv, dict(os.environ), str(log))).wait()
    assert (code, log.read_text()) == (real.returncode, said.decode())


async def test_sigkill_is_reported_as_asyncio_does(tmp_path: Path, server: ForkServer) -> None:
    script = _probe(tmp_path)
    report = tmp_path / "r.json"
    child = await server.spawn(
        [sys.executable, str(script), str(report), "wait"], {}, str(tmp_path / "log")
    )
    await _ready(report.with_name(report.name + ".ready"))
    child.kill()
    assert await child.wait() == -signal.SIGKILL
    assert child.returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):  # never a signal to a pid reused since
        child.send_signal(signal.SIGTERM)


async def test_children_are_killed_when_the_server_dies(tmp_path: Path) -> None:
    server = await ForkServer.start([])
    script = _probe(tmp_path)
    report = tmp_path / "r.json"
    child = await server.spawn(
        [sys.executable, str(script), str(report), "wait"], {}, str(tmp_path / "log")
    )
    await _ready(report.with_name(report.name + ".ready"))
    server._proc.kill()  # the server, not the child
    assert await child.wait() == -signal.SIGKILL  # nobody can tell its exit any more
    with pytest.raises(OSError, match="fork server has exited"):
        await server.spawn([sys.executable, str(script), "x", "0"], {}, str(tmp_path / "log"))
    await server.aclose()


def test_only_this_pythons_scripts_and_modules_are_forked() -> None:
    assert runnable([sys.executable, "-m", "ingest", "work"])
    assert runnable([sys.executable, "worker.py", "a"])
    assert not runnable([sys.executable, "-c", "print(1)"])
    assert not runnable([sys.executable, "-m"])
    assert not runnable(["/bin/sh", "-c", "exit 0"])
    assert not runnable([sys.executable])
