"""Bad inputs a real bucket holds: each ends as one clear outcome, the shard goes on.

Empty files, unsupported types, files too big for a stream-batch, objects deleted or
replaced between planning and upload, keys with unicode, spaces and over 255 characters.
Both sources that can change under the worker are covered: S3 (moto) and a local folder.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from ingest.demo.samples import make_jpeg
from ingest.items import FailureCode, Outcome
from ingest.worker.naming import FILENAME_MAX_BYTES
from tests.worker.harness import Run

# A key far over 255 characters (S3 keys run to 1024 bytes) whose last part (228 bytes,
# under a filesystem's 255) is longer than the filename the worker sends.
LONG_DIR = "dossier/" + "sous-répertoire très long/" * 12
LONG_NAME = "photo de l'été " * 13 + "fin.jpg"


def _inputs(rng: random.Random) -> dict[str, bytes]:
    """Keys (relative to the source root) and their bytes."""
    return {
        "empty.jpg": b"",
        "table.csv": b"a,b\n1,2\n",
        "big.jpg": make_jpeg(rng, 3 * 1024 * 1024),
        "deleted.jpg": make_jpeg(rng, 2000),
        "changed.jpg": make_jpeg(rng, 2100),
        "ünïcødé 写真.jpg": make_jpeg(rng, 2200),
        "with  spaces /and more.jpg": make_jpeg(rng, 2300),
        LONG_DIR + LONG_NAME: make_jpeg(rng, 2400),
    }


def _check(run: Run, sandbox: Any, inputs: dict[str, bytes]) -> None:
    code, err = run.work()
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    results = {r.key.split("src/", 1)[-1]: r for r in run.results().values()}
    assert set(results) == set(inputs)  # every planned item, one outcome each
    outcome = {k: r.outcome for k, r in results.items()}
    assert outcome["table.csv"] is Outcome.SKIPPED_UNSUPPORTED
    for key in ("empty.jpg", "deleted.jpg", "changed.jpg"):
        assert outcome[key] is Outcome.FAILED, results[key]
    assert "empty" in (results["empty.jpg"].reason or "")
    deleted = results["deleted.jpg"].reason or ""
    assert "gone" in deleted or "deleted" in deleted or "not found" in deleted, deleted
    assert "changed" in (results["changed.jpg"].reason or "")
    # Every failed row carries a machine-readable code (and HTTP status where one exists).
    code = {k: r.code for k, r in results.items() if r.outcome is Outcome.FAILED}
    assert code == {
        "empty.jpg": FailureCode.REJECTED_IN_BATCH,  # in a 200 batch answer: no status
        "deleted.jpg": FailureCode.SOURCE_GONE,
        "changed.jpg": FailureCode.SOURCE_CHANGED,
    }
    ok = ["big.jpg", "ünïcødé 写真.jpg", "with  spaces /and more.jpg", LONG_DIR + LONG_NAME]
    for key in ok:
        assert outcome[key] is Outcome.UPLOADED, results[key]
    files = {f["filename"]: f for f in sandbox.files()}
    assert len(files) == len(ok)
    assert files["big.jpg"]["session_id"] is None  # too big for a batch: sent by stream
    assert {"ünïcødé 写真.jpg", "and more.jpg"} <= set(files)
    long_name = next(n for n in files if n.startswith("photo de l"))
    assert long_name.endswith(".jpg") and len(long_name.encode()) <= FILENAME_MAX_BYTES


@pytest.mark.timeout(120)
def test_bad_inputs_in_s3(tmp_path: Path, sandbox: Any, s3_bucket: Any) -> None:
    inputs = _inputs(random.Random(1))
    assert len(LONG_DIR + LONG_NAME) > 255
    for key, data in inputs.items():
        s3_bucket.put(f"src/{key}", data)
    run = Run.create(tmp_path, sandbox, AWS_ENDPOINT_URL=s3_bucket.endpoint_url)
    run.plan(s3_bucket.uri("src/"))
    client = s3_bucket.server.client()
    client.delete_object(Bucket=s3_bucket.name, Key="src/deleted.jpg")
    s3_bucket.put("src/changed.jpg", make_jpeg(random.Random(2), 2100))  # same size, new ETag
    _check(run, sandbox, inputs)


@pytest.mark.timeout(120)
def test_bad_inputs_in_a_folder(tmp_path: Path, sandbox: Any) -> None:
    inputs = _inputs(random.Random(1))
    src = tmp_path / "src"
    for key, data in inputs.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    run = Run.create(tmp_path, sandbox)
    run.plan(str(src))
    (src / "deleted.jpg").unlink()
    changed = src / "changed.jpg"
    changed.write_bytes(make_jpeg(random.Random(2), 2100))
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _check(run, sandbox, inputs)
