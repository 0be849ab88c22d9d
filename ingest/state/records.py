"""The formats of everything a run keeps in the state store, in one place.

``run.json`` (the plan: :class:`RunPlan`), shard files (gzip JSON lines of items, one per
ordinal), checkpoints (:class:`Checkpoint`) and results parts (gzip JSON lines of
outcomes). The planner writes the first two, the worker the last two; the worker, the
report, ``status`` and the orchestration read them. They live here, below all of them, so
no reader imports its writer (the worker never imports the planner) and a format changes
in one file.
"""

from __future__ import annotations

import builtins
import dataclasses
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from json.encoder import encode_basestring
from typing import Any

from ingest.errors import ConfigError, StateDamaged
from ingest.items import Item, ItemResult, Outcome, PendingId
from ingest.state.base import RunLayout, StateStore
from ingest.state.old_results import code_from_reason

PLAN_FORMAT = 1
CHECKPOINT_FORMAT = 1
INTENT_FORMAT = 1
_PART_RE = re.compile(r"part-(\d+)\.jsonl\.gz$")


# -- run.json ------------------------------------------------------------------------


@dataclasses.dataclass
class RunPlan:
    """Everything ``run.json`` says about a run.

    run.json is written last, with create-if-absent: its presence means every shard it
    lists is complete. Each plan attempt writes its shards under its own ``attempt`` id,
    so two planners of one run id never mix their shards: the one whose run.json was
    created wins, and readers read only its attempt. run.json also records each shard's
    ETag, which readers check (a shard rewritten after the plan is a fatal error).
    """

    run_id: str
    created_at: str
    source: str
    filters: dict[str, Any]
    settings_digest: str
    shard_items: list[int]
    shard_bytes: list[int]
    shard_etags: list[str]
    items: int
    bytes: int
    listed: int
    filtered: dict[str, int]
    skipped_records: int
    histogram: dict[str, int]
    quota: dict[str, Any] | None
    item_cost_bytes: float
    format: int = PLAN_FORMAT
    attempt: str = ""  # "" for plans made before attempts: shards/NNNNN.jsonl.gz
    filtered_csv: str = ""  # path of the filtered objects with reasons; "" when none
    # A recurring import (--ledger): the ledger's name, what was done with changed
    # objects, and the listing's anti-join counts (unchanged objects are not planned).
    ledger: str | None = None
    changed_action: str | None = None
    new: int = 0
    changed: int = 0
    unchanged: int = 0

    @property
    def shards(self) -> int:
        return len(self.shard_items)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["shards"] = self.shards
        return d

    def encode(self) -> builtins.bytes:
        return json.dumps(self.to_json(), indent=1, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: builtins.bytes, where: str) -> RunPlan:
        try:
            d = json.loads(data)
            if d.get("format") != PLAN_FORMAT:
                raise ConfigError(
                    f"{where} has plan format {d.get('format')!r}, this version reads "
                    f"{PLAN_FORMAT}; use the aion-ingest version that made it"
                )
            d.pop("shards", None)
            return cls(**d)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{where} is not a readable plan ({exc}); plan a new run") from None


async def find_plan(store: StateStore, run_id: str) -> RunPlan | None:
    """The run's plan, or None when run.json does not exist (yet)."""
    layout = RunLayout(run_id)
    blob = await store.get(layout.run_json)
    if blob is None:
        return None
    return RunPlan.decode(blob.data, f"{store.uri} {layout.run_json}")


async def read_plan(store: StateStore, run_id: str) -> RunPlan:
    """The run's plan; ConfigError naming the fix when there is none."""
    plan = await find_plan(store, run_id)
    if plan is None:
        raise ConfigError(
            f"no complete plan for run {run_id!r} in {store.uri} "
            f"({RunLayout(run_id).run_json} is missing); check the run id and --state, "
            "or plan it first ('aion-ingest plan')"
        )
    return plan


async def create_plan(store: StateStore, plan: RunPlan) -> None:
    """Write run.json if absent (StateConflict when another planner was first)."""
    await store.create(RunLayout(plan.run_id).run_json, plan.encode())


# -- shard files: one compact JSON line per item, in ordinal order --------------------

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SHORT = (
    ("e", "etag"),
    ("m", "last_modified"),
    ("b", "bucket"),
    ("v", "version_id"),
    ("h", "sha256"),
    ("c", "content_type"),
    ("t", "title"),
)


def item_to_json(item: Item) -> dict[str, Any]:
    """An item's compact JSON form: short keys, empty fields left out (plans hold millions)."""
    d: dict[str, Any] = {"k": item.key, "s": item.size}
    for short, name in _SHORT:
        value = getattr(item, name)
        if value is not None:
            d[short] = value
    if item.tags:
        d["g"] = list(item.tags)
    return d


def item_from_json(d: Mapping[str, Any]) -> Item:
    """Inverse of :func:`item_to_json`."""
    return Item(
        key=d["k"],
        size=d["s"],
        etag=d.get("e"),
        last_modified=d.get("m"),
        bucket=d.get("b"),
        version_id=d.get("v"),
        sha256=d.get("h"),
        content_type=d.get("c"),
        title=d.get("t"),
        tags=tuple(d.get("g", ())),
    )


def item_line(item: Item) -> str:
    """A shard line without its newline: ``json.dumps(item_to_json(item))``, compact,
    built directly: 5x faster than building the dict and encoding it, which is most of
    the planner's own cost. Same keys, same order (a hypothesis test pins the equality)."""
    q = encode_basestring
    parts = ['{"k":', q(item.key), ',"s":', str(item.size)]
    for name, value in (
        (',"e":', item.etag),
        (',"m":', item.last_modified),
        (',"b":', item.bucket),
        (',"v":', item.version_id),
        (',"h":', item.sha256),
        (',"c":', item.content_type),
        (',"t":', item.title),
    ):
        if value is not None:
            parts += (name, q(value))
    if item.tags:
        parts += (',"g":', _DUMPS(list(item.tags)))
    parts.append("}")
    return "".join(parts)


def shard_compressor() -> zlib._Compress:
    """A shard file's gzip stream: level 1, zero mtime, so the same items always give the
    same bytes (a redone plan writes byte-identical shards)."""
    return zlib.compressobj(1, zlib.DEFLATED, 31)


def decode_shard(data: builtins.bytes) -> Iterator[Item]:
    """The items of a shard file, in ordinal order (ordinal = position)."""
    for line in gzip.decompress(data).splitlines():
        if line:
            yield item_from_json(json.loads(line))


# What a truncated or garbled gzip JSON-lines file raises while being decoded.
_DAMAGE = (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError, AttributeError)


async def read_shard(store: StateStore, plan: RunPlan, index: int) -> list[Item]:
    """Shard ``index`` of ``plan`` (its attempt), checked against the ETag run.json
    recorded. ConfigError when it is missing; StateDamaged when it was rewritten after the
    plan or cannot be read (fatal: a retry reads the same bytes)."""
    run_id = plan.run_id
    path = RunLayout(run_id).shard(index, plan.attempt)
    blob = await store.get(path)
    if blob is None:
        raise ConfigError(f"run {run_id}: {path} is missing from {store.uri}; plan again")
    recorded = plan.shard_etags[index] if index < len(plan.shard_etags) else None
    if recorded is not None and blob.etag.strip('"') != recorded.strip('"'):
        raise StateDamaged(
            f"shard file {store.uri.rstrip('/')}/{path} does not match run.json (ETag "
            f"{blob.etag.strip(chr(34))}, recorded {recorded.strip(chr(34))}): it is damaged "
            "or was rewritten after the plan; restore it, or plan the source again under a "
            "new run id"
        )
    try:
        return list(decode_shard(blob.data))
    except _DAMAGE as exc:
        raise StateDamaged(
            f"shard file {store.uri.rstrip('/')}/{path} is damaged ({_why(exc)}); restore "
            "it from a backup, or plan the source again under a new run id"
        ) from None


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:120] + "..."


# -- checkpoints ------------------------------------------------------------------------


@dataclasses.dataclass
class Checkpoint:
    """Done ordinals of one shard: all below ``low``, plus ``done`` (all >= ``low``)."""

    low: int = 0
    done: set[int] = dataclasses.field(default_factory=set)
    worker_id: str = ""
    generation: int = 0
    updated_at: str = ""

    def is_done(self, ordinal: int) -> bool:
        return ordinal < self.low or ordinal in self.done

    def add(self, ordinal: int) -> None:
        """Mark ``ordinal`` done (idempotent); the low-water mark moves up when it can."""
        if ordinal < 0:
            raise ValueError(f"ordinal must be >= 0, got {ordinal}")
        if ordinal < self.low:
            return
        self.done.add(ordinal)
        self._compact()

    def add_all(self, ordinals: Iterable[int]) -> None:
        for ordinal in ordinals:
            if ordinal < 0:
                raise ValueError(f"ordinal must be >= 0, got {ordinal}")
            if ordinal >= self.low:
                self.done.add(ordinal)
        self._compact()

    def merge(self, other: Checkpoint) -> None:
        """Union of both progresses (ownership fields are left as they are)."""
        if other.low > self.low:
            self.done = {o for o in self.done if o >= other.low}
            self.low = other.low
        self.add_all(other.done)

    def count(self) -> int:
        """How many ordinals are done."""
        return self.low + len(self.done)

    def is_complete(self, total: int) -> bool:
        return self.low >= total

    def _compact(self) -> None:
        while self.low in self.done:
            self.done.discard(self.low)
            self.low += 1

    def runs(self) -> list[list[int]]:
        """``done`` as half-open runs ``[start, end)`` of consecutive ordinals."""
        out: list[list[int]] = []
        for o in sorted(self.done):
            if out and out[-1][1] == o:
                out[-1][1] = o + 1
            else:
                out.append([o, o + 1])
        return out

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "v": CHECKPOINT_FORMAT,
            "low": self.low,
            "done": self.runs(),
            "worker": self.worker_id,
            "gen": self.generation,
            "updated": self.updated_at,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        try:
            doc = json.loads(data)
            if doc.get("v") != CHECKPOINT_FORMAT:
                raise ValueError(f"unknown checkpoint format {doc.get('v')!r}")
            cp = cls(
                low=int(doc["low"]),
                worker_id=str(doc.get("worker", "")),
                generation=int(doc.get("gen", 0)),
                updated_at=str(doc.get("updated", "")),
            )
            for start, end in doc["done"]:
                cp.done.update(range(int(start), int(end)))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable checkpoint: {exc}") from None
        cp._compact()
        return cp


async def read_checkpoint(store: StateStore, run_id: str, index: int) -> Checkpoint:
    """The shard's checkpoint (empty when the shard never started or it is unreadable)."""
    blob = await store.get(RunLayout(run_id).checkpoint(index))
    if blob is None:
        return Checkpoint()
    try:
        return Checkpoint.from_bytes(blob.data)
    except ValueError:
        return Checkpoint()


# -- results parts: one JSON line per outcome, appended as parts, never rewritten --------


def result_to_json(r: ItemResult) -> dict[str, Any]:
    d: dict[str, Any] = {
        "o": r.ordinal,
        "key": r.key,
        "size": r.size,
        "outcome": r.outcome.value,
        "attempts": r.attempts,
    }
    if r.image_id is not None:
        d["image_id"] = r.image_id
    if r.reason is not None:
        d["reason"] = r.reason
    if r.http_status is not None:
        d["http_status"] = r.http_status
    if r.code is not None:
        d["code"] = r.code
    if r.pending is not None:
        p = r.pending
        d["pending"] = {"s": p.session_id, "n": p.filename, "w": [p.sent, p.answered]}
    return d


def result_from_json(d: Mapping[str, Any]) -> ItemResult:
    """Inverse of :func:`result_to_json`. A ``failed`` row written before rows carried a
    code gets one from its reason (:mod:`.old_results`), so every failed result has one."""
    outcome = Outcome(d["outcome"])
    code = d.get("code")
    if code is None and outcome is Outcome.FAILED:
        code = code_from_reason(d.get("reason"), d.get("http_status")).value
    return ItemResult(
        ordinal=d["o"],
        key=d["key"],
        size=d["size"],
        outcome=outcome,
        image_id=d.get("image_id"),
        reason=d.get("reason"),
        http_status=d.get("http_status"),
        attempts=d.get("attempts", 0),
        code=code,
        pending=_pending_from_json(d["pending"]) if d.get("pending") else None,
    )


def _pending_from_json(d: Mapping[str, Any]) -> PendingId:
    return PendingId(d["s"], d["n"], float(d["w"][0]), float(d["w"][1]))


def encode_part(results: list[ItemResult]) -> bytes:
    lines = "".join(json.dumps(result_to_json(r), ensure_ascii=False) + "\n" for r in results)
    # surrogatepass: keys from file names that are not UTF-8 (see planning/spool.py)
    return gzip.compress(lines.encode("utf-8", "surrogatepass"), compresslevel=6, mtime=0)


def decode_part(data: bytes) -> list[ItemResult]:
    text = gzip.decompress(data).decode("utf-8", "surrogatepass")
    return [result_from_json(json.loads(line)) for line in text.splitlines() if line]


def part_number(path: str) -> int | None:
    m = _PART_RE.search(path)
    return int(m.group(1)) if m else None


async def list_parts(store: StateStore, layout: RunLayout, index: int) -> list[tuple[int, str]]:
    """(part number, path) of every results part of shard ``index``, in part order."""
    prefix = layout.results_dir(index) + "/"
    parts = []
    async for path in store.list(prefix):
        n = part_number(path)
        if n is not None:
            parts.append((n, path))
    return sorted(parts)


async def read_results(
    store: StateStore, layout: RunLayout, index: int, damaged: list[str] | None = None
) -> dict[int, ItemResult]:
    """Every stored outcome of shard ``index`` by ordinal; the latest part wins.

    A part that cannot be read (truncated, garbled) is StateDamaged, or, when ``damaged``
    is given, its path is appended there and the other parts are read: its outcomes are
    lost, and their ordinals count as never done (``resume`` redoes them).
    """
    out: dict[int, ItemResult] = {}
    for _, path in await list_parts(store, layout, index):
        blob = await store.get(path)
        if blob is None:  # listed, then deleted: nothing to read
            continue
        try:
            results = decode_part(blob.data)
        except _DAMAGE as exc:
            where = f"{store.uri.rstrip('/')}/{path}"
            if damaged is None:
                raise StateDamaged(
                    f"results part {where} is damaged ({_why(exc)}); run "
                    f"'aion-ingest resume {layout.run_id}' to redo the items it held"
                ) from None
            damaged.append(where)
            continue
        for result in results:
            out[result.ordinal] = result
    return out


# -- intent records: what a worker is about to send, written before the request ----------


@dataclasses.dataclass(frozen=True)
class IntentRecord:
    """One upload request a worker is about to send: the shard's ordinals it carries (in
    request order) and when (Unix seconds, the worker's clock), written before the request
    so a worker that restarts after a crash knows what its predecessor had sent.

    The ordinal names the item: the shard file is immutable (run.json holds its ETag) and
    the request's bytes are the planned object's (S3 reads carry ``If-Match`` on the
    planned ETag), so ordinal + shard is the key, content and size of what was sent.
    Written with create (never rewritten) under ``intents/<index>/<worker>-<seq>.json``;
    deleted once the checkpoint covers every ordinal it names.
    """

    worker_id: str
    seq: int
    sent_at: float
    route: str
    ordinals: tuple[int, ...]

    def to_bytes(self) -> builtins.bytes:
        doc = {
            "v": INTENT_FORMAT,
            "worker": self.worker_id,
            "seq": self.seq,
            "at": self.sent_at,
            "route": self.route,
            "o": list(self.ordinals),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: builtins.bytes) -> IntentRecord:
        try:
            doc = json.loads(data)
            if doc.get("v") != INTENT_FORMAT:
                raise ValueError(f"unknown intent format {doc.get('v')!r}")
            return cls(
                worker_id=str(doc["worker"]),
                seq=int(doc["seq"]),
                sent_at=float(doc["at"]),
                route=str(doc["route"]),
                ordinals=tuple(int(o) for o in doc["o"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable intent record: {exc}") from None


async def read_intents(
    store: StateStore, layout: RunLayout, index: int
) -> list[tuple[str, IntentRecord | None]]:
    """(path, record) of every intent record of shard ``index``, oldest first by
    (sent_at, path); record None for a file that cannot be read (a write cut short)."""
    out: list[tuple[str, IntentRecord | None]] = []
    async for path in store.list(layout.intents_dir(index) + "/"):
        blob = await store.get(path)
        if blob is None:  # listed, then deleted by the worker that wrote it
            continue
        try:
            out.append((path, IntentRecord.from_bytes(blob.data)))
        except ValueError:
            out.append((path, None))
    out.sort(key=lambda pr: (pr[1].sent_at if pr[1] else 0.0, pr[0]))
    return out
