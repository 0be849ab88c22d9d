"""One 1 GiB object through the presigned path: the worker's peak RSS.

Starts ``moto_server`` and the sandbox (``--store none``) as subprocesses, streams a
generated PDF-looking object of ``--size`` bytes into moto with a multipart upload
(``boto3 upload_fileobj`` from a reader over ``ingest.demo.samples.big_pdf_chunks``, so this
process never holds it either), plans it and runs ``aion-ingest work``: request-presigned-url,
a streamed PUT of the S3 body, confirm. The worker's peak RSS is VmHWM of its own
process (sampled while it runs); moto's own memory (it keeps objects in memory or spooled files) is
printed beside it and does not count. Target: peak RSS <= 150 MiB.

    .venv/bin/python bench/worker_large.py                  # 1 GiB
    .venv/bin/python bench/worker_large.py --size 4GiB
"""

from __future__ import annotations

import argparse
import io
import time
import uuid

import worker_harness as h

# the demo's reader over a chunk iterator, for boto3's streaming multipart upload
from ingest.demo.samples import ChunkReader, big_pdf_chunks

TARGET_MIB = 150
_UNITS = {"GiB": 1024**3, "MiB": 1024**2, "KiB": 1024, "B": 1}


def _size(text: str) -> int:
    for unit, factor in _UNITS.items():
        if text.endswith(unit):
            return int(float(text.removesuffix(unit)) * factor)
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1GiB", help="object size: bytes, or 512MiB, 1GiB")
    parser.add_argument("--bucket", default="bench-large")
    args = parser.parse_args()
    size = _size(args.size)

    with h.moto() as (s3, moto_pid), h.sandbox() as (api, _):
        client = h.s3_client(s3)
        client.create_bucket(Bucket=args.bucket)
        t0 = time.perf_counter()
        reader = io.BufferedReader(ChunkReader(big_pdf_chunks(size)), 1024 * 1024)
        client.upload_fileobj(reader, args.bucket, "scans/big.pdf")
        print(f"{size / h.MiB:,.0f} MiB object into moto in {time.perf_counter() - t0:.0f} s")
        env = h.worker_env(s3, api)
        state, run_id = h.new_state(), f"large-{uuid.uuid4().hex[:8]}"
        h.plan(f"s3://{args.bucket}/", state, run_id, env)
        m = h.run_measured(h.work_cmd(run_id, state), env)
        moto_peak = h.vm_hwm(moto_pid)
        stats = h.admin(api, "/_sandbox/stats")
    if m.code != 0:
        raise SystemExit(f"worker exited {m.code}:\n{m.stderr_tail}")
    got = h.outcomes(state, run_id)
    seconds = m.window or m.wall
    print(
        f"worker: {got}, {seconds:.1f} s = {size / seconds / 1e6:.0f} MB/s, "
        f"CPU {m.cpu:.1f} s; sandbox received {stats['bytes_received'] / h.MiB:,.0f} MiB"
    )
    print(
        f"  worker peak RSS {m.maxrss / h.MiB:.0f} MiB (target <= {TARGET_MIB}: "
        f"{'met' if m.maxrss <= TARGET_MIB * h.MiB else 'NOT met'}); "
        f"moto's own peak {moto_peak / h.MiB:,.0f} MiB (not counted)"
    )
    return 0 if got.get("uploaded") == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
