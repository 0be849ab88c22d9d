"""The sandbox fuzzed against the public API spec by Schemathesis, a tester no one here wrote.

Schemathesis reads ``tests/data``'s copy of the public OpenAPI spec, as amended by the
user's document (``tests.contract.effective_spec``: every deliberate deviation is listed
there, once, with its reason), and generates requests for every operation the sandbox
serves: schema-valid ones (which must be accepted), schema-violating ones (which must be
refused with a 4xx), undeclared methods (405 with ``Allow``), requests without the key
(401). Every check is on; each answer's status, headers, content type and body must match
the spec. A stateful run follows links (ids from uploads, sessions from ``stream-batch``,
batches from ``batch-prepare``) so the operations that read what an upload made get real
ids, not only 404s. ``schemathesis_hooks.py`` makes the files of valid cases real images
and drops findings that multipart's all-text encoding makes meaningless.

A fixed seed and a bounded number of examples keep it deterministic: about 900 cases, some
20 s of CPU (most of it Schemathesis generating them). It runs Schemathesis' CLI, which
prints the failures with a curl line to replay each; its pytest integration does not run on
pytest 9.2.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ingest.sandbox.options import SandboxOptions
from tests.contract import UNSERVED, effective_spec
from tests.fixtures.sandbox import start_sandbox

SEED = 20261129
MAX_EXAMPLES = 6
MAX_STEPS = 10  # per stateful scenario (Schemathesis' default: 6)

API = "/api/v2"
ROOT = Path(__file__).resolve().parents[2]

# OpenAPI links for the stateful run: ids that one answer hands to the next request
# (``body.NAME``: a field of the next request's JSON body).
_IMAGE_ID = {"image_id": "$response.body#/image_id"}
_SESSION_ID = {"session_id": "$response.body#/session_id"}
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("post", "/user-files/upload/stream"): {
        "UploadStatus": ("GET /uploads/status/{image_id}", _IMAGE_ID),
        "UserFile": ("GET /user-files/{image_id}", _IMAGE_ID),
    },
    ("post", "/user-files/upload/stream-batch"): {
        "SessionStatus": ("GET /uploads/sessions/{session_id}/status", _SESSION_ID),
        "SessionResults": ("GET /uploads/sessions/{session_id}/results", _SESSION_ID),
        "SessionCancel": ("POST /uploads/sessions/{session_id}/cancel", _SESSION_ID),
        "BatchStatus": (
            "GET /uploads/batch/{batch_id}/status",
            {"batch_id": "$response.body#/session_id"},
        ),
    },
    ("post", "/uploads/request-presigned-url"): {
        # nothing was PUT: the confirm is refused (400), which is what this link checks
        "Confirm": ("POST /uploads/confirm", {"body.object_key": "$response.body#/object_key"}),
    },
    ("post", "/uploads/batch-prepare"): {
        "BatchStatus": (
            "GET /uploads/batch/{batch_id}/status",
            {"batch_id": "$response.body#/batch_id"},
        ),
        "BatchConfirm": (
            "POST /uploads/batch-confirm",
            {"body.batch_id": "$response.body#/batch_id"},
        ),
    },
}


def _link(target: str, params: dict[str, str]) -> dict[str, Any]:
    link: dict[str, Any] = {"operationId": target}
    body = {k.removeprefix("body."): v for k, v in params.items() if k.startswith("body.")}
    path = {k: v for k, v in params.items() if not k.startswith("body.")}
    if body:
        link["requestBody"] = body
    if path:
        link["parameters"] = path
    return link


def _fuzz_spec() -> dict[str, Any]:
    """The effective spec without the unserved operations, with operation ids and links."""
    spec = copy.deepcopy(effective_spec())
    for method, path in UNSERVED:
        item = spec["paths"][path]
        del item[method.lower()]
        if not item:
            del spec["paths"][path]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            op["operationId"] = f"{method.upper()} {path.removeprefix(API)}"
    for (method, path), links in LINKS.items():
        response = spec["paths"][API + path][method]["responses"]["200"]
        response["links"] = {
            name: _link(target, params) for name, (target, params) in links.items()
        }
    return spec


# Schema-valid requests that the server's state, not their data, makes it refuse: the
# positive-data check expects these statuses too (the shapes are in the spec, or in DEVIATIONS).
REFUSED_BY_STATE: dict[tuple[str, str], tuple[int, str]] = {
    ("POST", "/uploads/confirm"): (400, "nothing was PUT to the object yet"),
    ("POST", "/uploads/sessions/{session_id}/cancel"): (400, "a finished session"),
}
_POSITIVE_OK = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]


def _config() -> str:
    """schemathesis.toml: what the command line cannot say per operation."""
    # generation-time health checks only measure how loaded the machine is
    lines = [
        'suppress-health-check = ["filter_too_much", "too_slow"]',
        "[phases.stateful]",
        f"max-steps = {MAX_STEPS}",
    ]
    for (method, path), (status, _why) in REFUSED_BY_STATE.items():
        statuses = ", ".join(f'"{s}"' for s in [*_POSITIVE_OK, str(status)])
        lines += [
            "[[operations]]",
            f'include-method = "{method}"',
            f'include-path = "{API}{path}"',
            f"checks.positive_data_acceptance.expected-statuses = [{statuses}]",
        ]
    return "\n".join(lines) + "\n"


def test_every_served_operation_keeps_the_spec(tmp_path: Path) -> None:
    fuzz_spec = _fuzz_spec()
    served = sum(len(item) for item in fuzz_spec["paths"].values())
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(fuzz_spec))
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config())
    handle = start_sandbox(SandboxOptions(), contract=False)  # Schemathesis is the judge here
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "--no-color",
                "--config-file",
                str(config),
                "run",
                str(spec),
                "--url",
                handle.base_url.removesuffix(API),
                "--header",
                f"Authorization: Bearer {handle.api_key}",
                "--checks",
                "all",
                "--seed",
                str(SEED),
                "--max-examples",
                str(MAX_EXAMPLES),
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--output-truncate",
                "false",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "SCHEMATHESIS_HOOKS": "tests.sandbox.schemathesis_hooks",
            },
            timeout=900,
            check=False,
        )
        stored = len(handle.app.store.files)
    finally:
        handle.stop()
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-3000:]
    assert f"Selected: {served}/{served}" in run.stdout and f"Tested: {served}" in run.stdout
    assert stored > 0  # valid uploads went through: the run reached past validation
