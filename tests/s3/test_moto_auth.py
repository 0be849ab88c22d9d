"""End to end: lean GETs with temporary credentials (a session token, as IRSA and workload
identity give), accepted by moto with its signature checks on.

moto checks signatures only when IAM access control is on (``INITIAL_NO_AUTH_ACTION_COUNT``,
read when moto starts), so this server runs in its own process, not the session's shared
one: the first requests set up a user, a role and a bucket, then everything is signed with
credentials from ``sts:AssumeRole`` (``ASIA...`` keys with a session token).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ingest.s3.client import S3Client, S3Config
from ingest.s3.lean import Fallbacks, LeanBody
from tests.fixtures.ports import free_port

_SETUP_ACTIONS = 6  # create_bucket, create_user, create_access_key, 2 policies, create_role
_ALLOW = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)
_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)
KEYS = ["a.jpg", "ünï cödé+(1)=%~.png", "runs//of/slashes.jpg"]


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto with access control did not start")


@pytest.fixture(scope="module")
def temporary_credentials() -> Iterator[tuple[str, dict[str, Any]]]:
    """(endpoint, client keyword arguments with assumed-role credentials) of a moto that
    checks signatures, with bucket ``bkt``."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={"INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_ACTIONS), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        setup = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        admin = {**setup, "aws_access_key_id": "AKIASETUP", "aws_secret_access_key": "setup"}
        boto3.client("s3", **admin).create_bucket(Bucket="bkt")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="ingest")
        user = iam.create_access_key(UserName="ingest")["AccessKey"]
        iam.put_user_policy(UserName="ingest", PolicyName="all", PolicyDocument=_ALLOW)
        role = iam.create_role(RoleName="ingest", AssumeRolePolicyDocument=_TRUST)["Role"]
        iam.put_role_policy(RoleName="ingest", PolicyName="all", PolicyDocument=_ALLOW)
        sts = boto3.client(
            "sts",
            **setup,
            aws_access_key_id=user["AccessKeyId"],
            aws_secret_access_key=user["SecretAccessKey"],
        )
        creds = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="ingest-test")["Credentials"]
        yield (
            endpoint,
            {
                **setup,
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            },
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_lean_gets_with_a_session_token_pass_motos_signature_check(
    temporary_credentials: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, kwargs = temporary_credentials
    assert kwargs["aws_access_key_id"].startswith("ASIA") and kwargs["aws_session_token"]
    s3 = boto3.client("s3", **kwargs)
    for key in KEYS:
        s3.put_object(Bucket="bkt", Key=key, Body=key.encode() * 1000)
    wrong = boto3.client("s3", **{**kwargs, "aws_secret_access_key": "not-the-secret"})
    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):  # moto does check
        wrong.get_object(Bucket="bkt", Key=KEYS[0])

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", kwargs["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", kwargs["aws_secret_access_key"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", kwargs["aws_session_token"])
    fallbacks = Fallbacks()
    client = S3Client(S3Config(endpoint_url=endpoint, region="us-east-1"), fallbacks=fallbacks)
    kinds = []
    try:
        for _ in range(2):
            for key in KEYS:
                stream = await client.get("bkt", key)
                kinds.append(isinstance(stream, LeanBody))
                assert b"".join([chunk async for chunk in stream]) == key.encode() * 1000
    finally:
        await client.aclose()
    assert kinds == [False] + [True] * (2 * len(KEYS) - 1)  # all lean after the first
    assert set(fallbacks.counts().values()) == {0}
