"""Logging: JSON lines off a TTY, text on one, secrets and presigned queries never shown."""

from __future__ import annotations

import io
import json
import logging

from ingest.logs import redact_url, register_secret, setup_logging


def test_json_lines_carry_extras_and_hide_secrets() -> None:
    out = io.StringIO()
    setup_logging("auto", "INFO", stream=out)  # StringIO is not a TTY: JSON
    register_secret("aion_topsecret_key")
    logging.getLogger("t").info("using key %s", "aion_topsecret_key", extra={"shard": 3})
    doc = json.loads(out.getvalue().strip())
    assert doc["msg"] == "using key ***"
    assert doc["shard"] == 3
    assert doc["level"] == "info"
    assert "aion_topsecret_key" not in out.getvalue()


def test_text_format_on_request() -> None:
    out = io.StringIO()
    setup_logging("text", "INFO", stream=out)
    logging.getLogger("t").warning("hello", extra={"n": 1})
    line = out.getvalue()
    assert "warning" in line and "hello" in line and "n=1" in line
    assert not line.startswith("{")


def test_presigned_query_is_dropped() -> None:
    url = "http://127.0.0.1:1/put/abc?X-Amz-Signature=deadbeef&X-Amz-Credential=x"
    shown = redact_url(url)
    assert "deadbeef" not in shown
    assert shown.startswith("http://127.0.0.1:1/put/abc")
    assert redact_url("http://h/p") == "http://h/p"
