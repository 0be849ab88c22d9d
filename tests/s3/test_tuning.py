"""The per-request trims of the S3 client change cost, never answers."""

from __future__ import annotations

import types
from typing import Any

import aioboto3

from ingest.s3.client import S3Client, S3Config, fast_timestamp
from ingest.s3.tuning import trim_request_overhead, unused_parameters
from tests.fixtures.s3 import S3Bucket


def _rule(*conditions: dict[str, Any]) -> types.SimpleNamespace:
    return types.SimpleNamespace(conditions=list(conditions), endpoint={"url": "x"})


def test_unused_parameters_are_those_no_rule_reads() -> None:
    ruleset = types.SimpleNamespace(
        parameters={"Bucket": 1, "Key": 2, "Region": 3},
        rules=[
            _rule({"fn": "isSet", "argv": [{"ref": "Bucket"}]}),
            types.SimpleNamespace(rules=[_rule({"fn": "not", "argv": [{"ref": "Region"}]})]),
        ],
    )
    assert unused_parameters(ruleset) == {"Key"}


async def _endpoints(client: Any, keys: list[str]) -> list[Any]:
    resolver = client._ruleset_resolver
    model = client.meta.service_model.operation_model("GetObject")
    return [await resolver.construct_endpoint(model, {"Bucket": "b", "Key": k}, {}) for k in keys]


async def test_trimmed_client_resolves_the_same_endpoints(s3_bucket: S3Bucket) -> None:
    keys = ["a.jpg", "deep/ünï cödé.png", "x" * 900]
    async with aioboto3.Session().client("s3", endpoint_url=s3_bucket.endpoint_url) as client:
        before = await _endpoints(client, keys)
        agent = client._user_agent_creator.to_string()
        trim_request_overhead(client)
        assert await _endpoints(client, keys) == before
        assert client._user_agent_creator.to_string() == agent


async def test_reads_through_the_trimmed_client(s3_bucket: S3Bucket) -> None:
    s3_bucket.put("one.jpg", b"first")
    s3_bucket.put("two/two.jpg", b"second")
    s3 = S3Client(S3Config(endpoint_url=s3_bucket.endpoint_url))
    try:
        for key, body in [("one.jpg", b"first"), ("two/two.jpg", b"second")]:
            stream = await s3.get(s3_bucket.name, key)
            assert b"".join([c async for c in stream]) == body
    finally:
        await s3.aclose()


def test_http_dates_parse_as_botocore_does() -> None:
    from botocore.utils import parse_timestamp

    for value in ["Sat, 28 Nov 2026 23:07:47 GMT", "Mon, 01 Jan 2024 00:00:00 +0100"]:
        assert fast_timestamp(value) == parse_timestamp(value)
