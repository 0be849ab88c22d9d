"""The ideal client: S3 GET then streamed upload POST, raw aiohttp, no books kept.

The yardstick of ``bench/worker_throughput.py``: the least a client can do to move the same
objects from S3 to the API the same way the worker does. Each request's body is a
multipart form streamed from the S3 GETs of its objects, one after the other, with an exact
Content-Length (as the worker's ``MultipartBody`` does); ``--batch 1`` posts each object to
``upload/stream``, ``--batch N`` posts groups of N to ``upload/stream-batch``, with the same
form fields as the worker. ``--concurrency`` requests are in flight. No signing (moto takes
anonymous GETs), no retries, no results, no checkpoint: what is left is the HTTP work.

    .venv/bin/python bench/ideal_client.py --s3 URL --bucket B --keys FILE --api URL/api/v2
        [--batch 1] [--concurrency 16]

``FILE`` has one ``key<TAB>size`` a line. Prints one JSON line: objects, bytes, seconds of
the transfer window and this process's CPU seconds over it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import aiohttp

CHUNK = 256 * 1024
CRLF = b"\r\n"
FIELDS = {"auto_describe": "true", "skip_duplicates": "true", "storage_target": "default"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Ideal:
    def __init__(self, args: argparse.Namespace, s3: aiohttp.ClientSession) -> None:
        self.args = args
        self.s3 = s3
        self.bucket_url = f"{args.s3.rstrip('/')}/{args.bucket}/"
        self.failed = 0

    def _parts(
        self, group: Sequence[tuple[str, int]], boundary: str
    ) -> tuple[bytes, list[bytes], bytes, int]:
        """Form fields, per-file part heads and the closing line; total Content-Length."""
        sep = b"--" + boundary.encode()
        fields = dict(FIELDS)
        if self.args.batch > 1:
            fields["intent"] = "describe"
        head = b"".join(
            sep + CRLF + f'Content-Disposition: form-data; name="{k}"'.encode() + CRLF * 2
            + v.encode() + CRLF
            for k, v in fields.items()
        )  # fmt: skip
        name = "file" if self.args.batch == 1 else "files"
        disposition = 'Content-Disposition: form-data; name="{}"; filename="{}"'
        heads = [
            sep
            + CRLF
            + disposition.format(name, key.rsplit("/", 1)[-1]).encode()
            + CRLF
            + b"Content-Type: image/jpeg"
            + CRLF * 2
            for key, _ in group
        ]
        closing = sep + b"--" + CRLF
        length = len(head) + sum(len(h) + s + 2 for h, (_, s) in zip(heads, group, strict=True))
        return head, heads, closing, length + len(closing)

    async def _body(
        self, group: Sequence[tuple[str, int]], head: bytes, heads: list[bytes], closing: bytes
    ) -> AsyncIterator[bytes]:
        yield head
        for (key, _), part in zip(group, heads, strict=True):
            yield part
            async with self.s3.get(self.bucket_url + urllib.parse.quote(key)) as r:
                r.raise_for_status()
                async for chunk in r.content.iter_chunked(CHUNK):
                    yield chunk
            yield CRLF
        yield closing

    async def send(self, api: aiohttp.ClientSession, group: Sequence[tuple[str, int]]) -> None:
        boundary = uuid.uuid4().hex
        head, heads, closing, length = self._parts(group, boundary)
        path = "upload/stream" if self.args.batch == 1 else "upload/stream-batch"
        headers = {
            "Authorization": f"Bearer {self.args.key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length),
        }
        url = f"{self.args.api.rstrip('/')}/user-files/{path}"
        body = self._body(group, head, heads, closing)
        async with api.post(url, data=body, headers=headers) as r:
            await r.read()
            if r.status != 200:
                self.failed += len(group)


async def run(args: argparse.Namespace, objects: list[tuple[str, int]]) -> dict[str, float]:
    groups = [objects[i : i + args.batch] for i in range(0, len(objects), args.batch)]
    groups.reverse()  # popped from the end: sent in key order
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout
        ) as s3,
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout
        ) as api,
    ):
        ideal = Ideal(args, s3)

        async def lane() -> None:
            while groups:
                await ideal.send(api, groups.pop())

        cpu0, t0 = _cpu(), time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(args.concurrency)))
        elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return {
        "objects": len(objects),
        "failed": ideal.failed,
        "bytes": sum(s for _, s in objects),
        "seconds": elapsed,
        "cpu": cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--s3", required=True, help="S3 endpoint URL (path-style)")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--keys", required=True, help="file of key<TAB>size lines")
    parser.add_argument("--api", required=True, help="API base URL up to /api/v2")
    parser.add_argument("--key", default="aion_sandbox_key", help="API key")
    parser.add_argument("--batch", type=int, default=1, help="files per request (1: stream)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    args = parser.parse_args()
    lines = Path(args.keys).read_text().splitlines()
    objects = [(k, int(s)) for k, s in (line.split("\t") for line in lines)]
    print(json.dumps(asyncio.run(run(args, objects))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
