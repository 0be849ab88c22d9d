"""Schemathesis hooks for the sandbox run (loaded by name through ``SCHEMATHESIS_HOOKS``).

- ``map_case``: the spec types an uploaded file as any bytes, but the API reads them: bytes
  that are none of the supported formats are refused (422). So in the cases Schemathesis
  means to be valid, each file becomes a small real JPEG (the refusal of other bytes is
  tested in tests/sandbox/test_stream.py).
- ``filter_failure``: a multipart form carries only text, so a number, a list or an object
  where the spec wants a string arrives as text the server cannot tell from a valid string
  (FastAPI takes it too). Such "schema-violating request accepted" findings on the stream
  endpoints say nothing about the server and are dropped; every other one stays.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import schemathesis

from tests.sandbox.files import jpeg

_seeds = itertools.count(1)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None or meta.generation.mode is not schemathesis.GenerationMode.POSITIVE:
        return case
    body = case.body
    if case.media_type == "multipart/form-data" and isinstance(body, dict):
        if "file" in body:
            body["file"] = jpeg(next(_seeds))
        if isinstance(body.get("files"), list):
            body["files"] = [jpeg(next(_seeds)) for _ in body["files"]]
    return case


# "violates `type` at /properties/tags/anyOf/1 (was null, became integer)"
_VIOLATION = re.compile(r"violates `(\w+)` at \S+ \(was (\w+), became (\w+)\)")


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    if failure.code != "ST201" or case.media_type != "multipart/form-data":
        return True
    found = [_VIOLATION.search(line) for line in failure.message.splitlines() if "violates" in line]
    invisible = [
        m is not None and m.group(1) == "type" and m.group(2) in ("string", "null") for m in found
    ]
    return not (invisible and all(invisible))
