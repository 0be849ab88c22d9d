"""``aion-ingest sandbox``: run the sandbox with uvicorn and say where it listens.

The socket is bound here, before uvicorn starts, so a busy port is one clear error line
(and ``--port 0`` can print the port it got); uvicorn then serves on that socket with
httptools and uvloop when they are installed.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import uvicorn

from ingest.errors import ConfigError
from ingest.sandbox.app import Sandbox
from ingest.sandbox.options import SandboxOptions, options_from_args


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"sandbox cannot listen on {host}:{port} ({exc.strerror}): pick another --port"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, options: SandboxOptions) -> uvicorn.Config:
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - uvloop is in uvicorn[standard]
        loop = "asyncio"
    return uvicorn.Config(
        app,
        loop=loop,
        http="httptools",
        lifespan="off",
        access_log=options.access_log,
        log_level="info" if options.access_log else "warning",
        timeout_keep_alive=30,
        # no h11 fallback size cap: bodies of 100 MB+ stream through the app
    )


def build(options: SandboxOptions) -> Sandbox:
    try:
        return Sandbox(options)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"sandbox: {exc}") from None


def describe(options: SandboxOptions, url: str) -> str:
    rpm = options.effective_rpm
    quota = options.monthly_limit
    return (
        f"Aionvision sandbox listening on {url}/api/v2\n"
        f"  API key: {options.api_keys[0]}\n"
        f"  export AIONVISION_BASE_URL={url}/api/v2 AIONVISION_API_KEY={options.api_keys[0]}\n"
        f"  tier {options.tier}: {options.batch_limit} files per stream-batch, "
        f"quota {'unlimited' if quota is None else quota}/month, "
        f"rate limit {'off' if rpm is None else f'{rpm}/min per key'}, store {options.store}\n"
        f"  admin key: {options.admin_key} (Bearer, for {url}/_sandbox/faults, "
        "/_sandbox/stats, /_sandbox/reset, /_sandbox/files)"
    )


def main(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    if options.store == "disk" and options.data_dir is None:
        raise ConfigError("--store disk needs --data-dir (or SANDBOX_DATA_DIR)")
    app = build(options)
    sock = bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(describe(options, f"http://{shown}:{port}"), flush=True)
    server = uvicorn.Server(uvicorn_config(app, options))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
