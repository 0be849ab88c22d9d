"""Settings: one tree of groups, read from the environment (and the command line).

Environment variables use the prefix ``INGEST_`` and ``__`` between a group and its field:
``INGEST_API__TIER=ENTERPRISE``, ``INGEST_WORKER__CONCURRENCY=32``. The API key and base
URL also come from the SDK's variables ``AIONVISION_API_KEY`` and ``AIONVISION_BASE_URL``
(the ``INGEST_`` form wins when both are set). Every field has a description: ``aion-ingest
settings`` prints them all, and the README's configuration table is made from them.
"""

from __future__ import annotations

import os
import re
import typing
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ingest.errors import ConfigError

Tier = Literal["FREE", "STARTER", "PROFESSIONAL", "ENTERPRISE"]

# Per-tier figures from the reference (aionvision-api-notes.md, uploads-api.md).
TIER_FILES_PER_BATCH: dict[str, int] = {
    "FREE": 10,
    "STARTER": 20,
    "PROFESSIONAL": 20,
    "ENTERPRISE": 50,
}
TIER_REQUESTS_PER_MINUTE: dict[str, int] = {
    "FREE": 10,
    "STARTER": 30,
    "PROFESSIONAL": 100,
    "ENTERPRISE": 500,
}
# quota-check's ``monthly_limit`` per tier (None: unlimited, ENTERPRISE).
TIER_BY_MONTHLY_LIMIT: dict[int, Tier] = {
    1_000: "FREE",
    10_000: "STARTER",
    50_000: "PROFESSIONAL",
}
STREAM_MAX_BYTES = 100 * 1024 * 1024  # the API's streaming limit per file


class _Group(BaseModel):
    model_config = {"extra": "forbid", "validate_assignment": True}


class ApiSettings(_Group):
    """How to reach the Aionvision Uploads API."""

    key: SecretStr | None = Field(
        None, description="API key (Bearer). Also read from AIONVISION_API_KEY. Never logged."
    )
    base_url: str = Field(
        "https://api.aionvision.tech/api/v2",
        description="API base URL up to /api/v2. Also read from AIONVISION_BASE_URL.",
    )
    tier: Tier = Field(
        "PROFESSIONAL",
        description="The key's plan tier; sets files per stream-batch and the request budget.",
    )
    transport: Literal["aiohttp", "httpx"] = Field(
        "aiohttp",
        description="HTTP engine under httpx's API: aiohttp's pool (fast) or httpx's own.",
    )
    max_connections: int = Field(64, ge=1, description="Connections kept open to the API.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    read_timeout: float = Field(
        300.0, gt=0, description="Seconds to wait for a response or the next body chunk."
    )
    request_deadline: float = Field(
        900.0,
        gt=0,
        description="Seconds one request may take in all, body sent and answer read; past "
        "it the request is retried like a timeout (a server trickling its answer byte by "
        "byte never trips read_timeout). Keep it above your largest upload's send time.",
    )
    max_attempts: int = Field(
        6, ge=1, description="Attempts per request, the first included, for retryable errors."
    )
    backoff_base: float = Field(
        0.5, gt=0, description="Seconds: first backoff cap (doubles each attempt, full jitter)."
    )
    backoff_max: float = Field(30.0, gt=0, description="Seconds: the largest single backoff.")
    retry_budget: int = Field(
        10_000,
        ge=0,
        description="Retries allowed per client (process) in all; past it errors are final.",
    )
    max_retry_after: float = Field(
        300.0, gt=0, description="Seconds: longest Retry-After honoured; longer waits are cut."
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        """A base URL without a scheme or host would fail every request, after retries."""
        parts = urllib.parse.urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "the API base URL must start with http:// or https:// and name a host, e.g. "
                "https://api.aionvision.tech/api/v2 (also read from AIONVISION_BASE_URL)"
            )
        return value.strip()


class SourceSettings(_Group):
    """How to read the source (S3, manifests, local folders)."""

    endpoint_url: str | None = Field(
        None, description="S3 endpoint (MinIO, moto, ...). Default: AWS_ENDPOINT_URL or AWS."
    )
    region: str | None = Field(None, description="S3 region. Default: the AWS SDK's own.")
    fetch_checksums: bool = Field(
        False,
        description="Ask S3 for each object's SHA-256 checksum (one extra request per object).",
    )
    list_concurrency: int = Field(8, ge=1, description="ListObjectsV2 calls in flight.")
    max_attempts: int = Field(
        5, ge=1, description="Attempts per S3 request, the first included (botocore's retries)."
    )
    head_concurrency: int = Field(
        32, ge=1, description="HEAD requests in flight to fill a manifest's missing size/etag."
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto",
        description="S3 URL style for the source and an s3:// state store: bucket in the host "
        "(virtual), in the path (path, for most S3-compatible servers), or botocore's choice.",
    )
    lean_get: bool = Field(
        True,
        description="Send GETs after a bucket's first as one hand-signed request (about half "
        "the worker's CPU per object); false sends every GET through botocore.",
    )
    manifest_errors: Literal["fail", "skip"] = Field(
        "fail",
        description="A bad manifest line stops the plan (fail) or is counted and reported (skip).",
    )
    manifest_keys: Literal["url", "raw"] = Field(
        "url",
        description="Keys in CSV manifests are URL-encoded, as S3 Batch Operations wants "
        "(url), or written as they are (raw). JSON Lines keys are always raw.",
    )


class FilterSettings(_Group):
    """Which source objects to take."""

    include: list[str] = Field(
        default_factory=list, description="Glob patterns a key must match (any of them)."
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns that drop a key (any of them)."
    )
    min_size: int | str | None = Field(
        None, description="Drop objects smaller: bytes or a size like 10KB, 5MiB."
    )
    max_size: int | str | None = Field(
        None, description="Drop objects larger: bytes or a size like 100MB, 1GiB."
    )
    modified_after: str | None = Field(
        None, description="ISO 8601 timestamp: drop objects last modified before it."
    )
    modified_before: str | None = Field(
        None, description="ISO 8601 timestamp: drop objects last modified at or after it."
    )
    supported_only: bool = Field(
        True, description="Drop formats the API does not accept before planning."
    )


class StoreSettings(_Group):
    """How to reach the state store (its URI is INGEST_STATE)."""

    endpoint_url: str | None = Field(
        None,
        description="S3 endpoint of an s3:// state store. Default: the source's endpoint, "
        "then AWS_ENDPOINT_URL or AWS.",
    )
    region: str | None = Field(None, description="S3 region of the state store.")
    verify_conditional_writes: bool = Field(
        True,
        description="At start, prove the store refuses a second create-if-absent "
        "(some S3-compatible servers ignore If-None-Match).",
    )
    lock_stale_seconds: float = Field(
        30.0,
        gt=0,
        description="Folder store: a lock file older than this is a crashed writer's; removed.",
    )


def parse_duration(text: str) -> float:
    """``6h``, ``90m``, ``45s``, ``2d`` or plain seconds → seconds; ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration: use e.g. 45s, 90m, 6h or 2d") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{text!r} is not a positive duration: use e.g. 45s, 90m, 6h or 2d")
    return value


class PlanSettings(_Group):
    """How to cut the listing into shards."""

    shards: int | None = Field(
        None, ge=1, description="Number of shards. Default: from the per-shard maxima."
    )
    max_items_per_shard: int = Field(
        10_000, ge=1, description="Largest number of objects in one shard."
    )
    max_bytes_per_shard: int = Field(
        50 * 1024**3, ge=1, description="Largest number of bytes in one shard."
    )
    min_shards: int = Field(
        1,
        ge=1,
        description="Fewest shards when there are that many objects (unless shards is set); "
        "'aion-ingest run -p P' asks for P, one per worker process.",
    )
    ignore_quota: bool = Field(False, description="Plan even when quota-check says no.")
    ledger: str | None = Field(
        None,
        description=(
            "The import's ledger name (a recurring import): plan only objects the ledger "
            "does not hold as sent, and record this run's outcomes in it afterwards. "
            "Stored under ledger/NAME/ in the state store."
        ),
    )
    changed: Literal["upload", "skip"] = Field(
        "upload",
        description=(
            "With a ledger, an object whose key was sent before with another ETag or size: "
            "'upload' sends it again (the API has no replace: a new file), 'skip' does not."
        ),
    )
    deadline: str | None = Field(
        None,
        description=(
            "When the run must be done by, from its start (45s, 90m, 6h, 2d): the plan "
            "warns when the predicted duration is longer, with what would make it fit."
        ),
    )

    @field_validator("deadline")
    @classmethod
    def _deadline_is_a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class WorkerSettings(_Group):
    """How one worker uploads its shard."""

    concurrency: int = Field(16, ge=1, description="Upload requests in flight per worker.")
    queue_size: int = Field(256, ge=1, description="Bound of each pipeline queue (items).")
    small_file_max: int = Field(
        1024 * 1024, ge=0, description="Files up to this size (bytes) go in stream-batch."
    )
    batch_max_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Byte cap of one stream-batch request."
    )
    batch_files: int | None = Field(
        None, ge=1, description="Files per stream-batch. Default: the tier's limit."
    )
    batch_results: Literal["list", "fetch", "accept"] = Field(
        "list",
        description=(
            "Per-file results of a stream-batch of more than 5 files (the API answers "
            "those only through a second request). 'list' (default): when the answer "
            "accounts for every file, the files are recorded 'uploaded' with their image "
            "id pending, and after the workers the run resolves every pending id in bulk "
            "from GET /user-files pages (100 files a request; matched by name, size and "
            "creation time; a file not matched, e.g. a duplicate the API skipped, asks its "
            "session's results): about one request per batch plus one per 100 files. "
            "'fetch': one more request per batch, at once, for the session's results "
            "(half the files per minute when the request budget is the limit). "
            "'accept': no ids, no extra request; "
            "accepted files are 'uploaded' without image id (a duplicate the API skipped "
            "also shows as uploaded), rejected ones 'failed'. Batches of up to 5 files "
            "always carry their results."
        ),
    )
    skip_duplicates: bool = Field(
        True, description="Ask the API to skip a file whose SHA-256 it already holds."
    )
    check_duplicates: bool = Field(
        True, description="Ask check-duplicates for items whose SHA-256 the source knows."
    )
    auto_describe: bool = Field(True, description="Ask the API for AI descriptions.")
    storage_target: Literal["default", "custom"] = Field(
        "default", description="Where the API stores the files."
    )
    intent: Literal["describe", "verify", "rules"] = Field(
        "describe", description="stream-batch intent."
    )
    tags: list[str] = Field(
        default_factory=list, description="Tags added to every file of the run."
    )
    requests_per_minute: float | None = Field(
        None,
        gt=0,
        description=(
            "The API key's request budget, shared by every worker using the key (all "
            "workers of this run, and of other runs on the same key and state store). "
            "Default: the tier's limit."
        ),
    )
    parallel_workers: int = Field(
        1,
        ge=1,
        description=(
            "Workers of the run: each starts at an equal share of the budget, until its "
            "first heartbeat (budget_heartbeat_seconds) says how many are live."
        ),
    )
    budget_heartbeat_seconds: float = Field(
        5.0,
        ge=0,
        description=(
            "How often a worker renews its membership of the key's budget in the state "
            "store and recomputes its share (the budget / the live workers, max-min fair: "
            "a worker that uses less leaves the rest to the others); a crashed worker "
            "drops out after three heartbeats. 0: no sharing, a fixed share of "
            "budget / parallel_workers."
        ),
    )
    budget_look_seconds: float = Field(
        1.0,
        ge=0,
        description=(
            "Between heartbeats, how often a worker lists the key's members again (one "
            "LIST, no write), so that the share of a worker that finished goes to the "
            "others within this time. 0: only at heartbeats."
        ),
    )
    bytes_per_second: float | None = Field(
        None, gt=0, description="Upload bandwidth cap per worker (bytes/s). Default: none."
    )
    flush_seconds: float = Field(
        5.0, gt=0, description="Write results and the checkpoint at least this often."
    )
    flush_items: int = Field(
        500, ge=1, description="Write results and the checkpoint after this many outcomes."
    )
    clock_skew_seconds: float = Field(
        5.0,
        ge=0,
        description="How far the API's clock may be from the workers' (seconds). After a "
        "crash or a lost answer, a re-sent file answered 'skipped' is reported 'uploaded' "
        "when the server created that file at or after this run first sent it, minus this "
        "margin; a file created earlier stays 'skipped_duplicate'.",
    )
    fork_server: bool = Field(
        True,
        description="aion-ingest run and resume on Linux: start the local worker processes "
        "as forks of one process that imported the worker's modules once, while the run "
        "planned, instead of each importing them (~0.7 s of CPU each; on few cores that "
        "delayed the first upload). false: each worker a new 'python -m ingest work'.",
    )
    stop_seconds: float = Field(
        20.0,
        gt=0,
        description="Seconds after SIGTERM when the worker exits (143) whatever still runs; "
        "keep it under the pod's terminationGracePeriodSeconds (30 by default).",
    )


class KubernetesSettings(_Group):
    """How the coordinator runs the workers as a Kubernetes Indexed Job."""

    namespace: str | None = Field(
        None, description="Namespace of the worker Job. Default: the coordinator pod's own."
    )
    kubeconfig: str | None = Field(
        None,
        description="Kubeconfig file used outside a cluster. Default: in-cluster config, "
        "then KUBECONFIG or ~/.kube/config.",
    )
    image: str | None = Field(
        None, description="Worker image. Default: the coordinator pod's image (read via the API)."
    )
    service_account: str | None = Field(
        None, description="Worker service account. Default: the coordinator pod's."
    )
    parallelism: int = Field(4, ge=1, description="Worker pods running at once.")
    backoff_limit_per_index: int = Field(
        3, ge=0, description="Retries of one index (exit 1 or a crash) before it is failed."
    )
    max_failed_indexes: int | None = Field(
        None, ge=0, description="Stop the whole Job once more indexes failed. Default: no limit."
    )
    ttl_seconds_after_finished: int | None = Field(
        7 * 24 * 3600, ge=0, description="Seconds a finished worker Job is kept before deletion."
    )
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Seconds the worker Job may run in all. Default: no deadline."
    )
    resources: dict[str, Any] | None = Field(
        None, description="Worker container resources (JSON). Default: the coordinator's."
    )
    node_selector: dict[str, str] | None = Field(
        None, description="Worker pods' nodeSelector (JSON). Default: the coordinator's."
    )
    tolerations: list[dict[str, Any]] | None = Field(
        None, description="Worker pods' tolerations (JSON). Default: the coordinator's."
    )
    job_name_prefix: str = Field(
        "aion-ingest",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,28}[a-z0-9])?$",
        description="Worker Job names are this prefix, the run id and, when needed, a hash.",
    )
    watch_seconds: int = Field(
        300, ge=1, description="Server-side timeout of one watch call; then it is resumed."
    )
    progress_seconds: float = Field(
        30.0, gt=0, description="Log the run's progress (from the state store) this often."
    )


class MetricsSettings(_Group):
    """Prometheus: the /metrics endpoint and the end-of-run Pushgateway push."""

    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve /metrics on this port while working (0: any free port; unset: off).",
    )
    address: str = Field(
        "127.0.0.1",
        description="Address /metrics listens on; 0.0.0.0 in a pod (the chart sets it).",
    )
    linger_seconds: float = Field(
        0.0,
        ge=0,
        description="Keep serving /metrics this long after the shard ends, so Prometheus "
        "scrapes its final figures (about two scrape intervals; not after SIGTERM).",
    )
    pushgateway_url: str | None = Field(
        None,
        description="Pushgateway URL (http://host:9091): the run's final figures go there.",
    )
    job: str = Field("aion-ingest", description="Pushgateway grouping: the job label.")
    release: str = Field(
        "local", description="Pushgateway grouping: the release label (the Helm release)."
    )
    push_timeout: float = Field(10.0, gt=0, description="Seconds a Pushgateway push may take.")


class LogSettings(_Group):
    """Logging."""

    format: Literal["auto", "json", "text"] = Field(
        "auto", description="json (one object a line), text, or auto: text on a TTY."
    )
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Level.")


class Settings(BaseSettings):
    """All settings of aion-ingest."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    state: str | None = Field(
        None, description="State store URI: s3://bucket/prefix or file:///path."
    )
    api: ApiSettings = Field(default_factory=ApiSettings, description=ApiSettings.__doc__)
    source: SourceSettings = Field(
        default_factory=SourceSettings, description=SourceSettings.__doc__
    )
    filters: FilterSettings = Field(
        default_factory=FilterSettings, description=FilterSettings.__doc__
    )
    store: StoreSettings = Field(default_factory=StoreSettings, description=StoreSettings.__doc__)
    plan: PlanSettings = Field(default_factory=PlanSettings, description=PlanSettings.__doc__)
    worker: WorkerSettings = Field(
        default_factory=WorkerSettings, description=WorkerSettings.__doc__
    )
    kubernetes: KubernetesSettings = Field(
        default_factory=KubernetesSettings, description=KubernetesSettings.__doc__
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description=MetricsSettings.__doc__
    )
    log: LogSettings = Field(default_factory=LogSettings, description=LogSettings.__doc__)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _IngestEnvSource(settings_cls), _SdkEnvSource(settings_cls))

    def files_per_batch(self) -> int:
        """Files per stream-batch request: the setting, capped by the tier's limit."""
        limit = TIER_FILES_PER_BATCH[self.api.tier]
        return min(self.worker.batch_files or limit, limit)

    def requests_per_minute(self) -> float:
        """The whole run's request budget per minute."""
        return self.worker.requests_per_minute or float(TIER_REQUESTS_PER_MINUTE[self.api.tier])


def _is_str_list(field: FieldInfo | None) -> bool:
    return (
        field is not None
        and typing.get_origin(field.annotation) is list
        and (typing.get_args(field.annotation) == (str,))
    )


class _IngestEnvSource(EnvSettingsSource):
    """The INGEST_ variables; a list of words may be JSON or comma-separated
    (``INGEST_FILTERS__INCLUDE=*.jpg,*.png``)."""

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            decoded = super().decode_complex_value(field_name, field, value)
        except ValueError:
            if not _is_str_list(field):
                raise
            decoded = None
        if _is_str_list(field) and not isinstance(decoded, list):
            return [part.strip() for part in str(value).split(",") if part.strip()]
        return decoded


class _SdkEnvSource(EnvSettingsSource):
    """The SDK's own variables, below the INGEST_ ones in priority."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="", env_nested_delimiter=None)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        api: dict[str, str] = {}
        if key := os.environ.get("AIONVISION_API_KEY"):
            api["key"] = key
        if url := os.environ.get("AIONVISION_BASE_URL"):
            api["base_url"] = url
        return {"api": api} if api else {}


def _env_name(loc: tuple[int | str, ...]) -> str:
    return "INGEST_" + "__".join(str(p).upper() for p in loc)


def describe_validation_error(exc: ValidationError) -> str:
    """One line per bad field: the environment variable, what is wrong, what was given."""
    lines = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        name = _env_name(loc) if loc else "settings"
        given = err.get("input")
        shown = "" if isinstance(given, dict) or "key" in name.lower() else f" (got {given!r})"
        lines.append(f"invalid setting {name}: {err['msg']}{shown}; fix or unset it")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; command-line overrides are nested dicts (``api={"tier": ...}``).

    Raises :class:`ConfigError` with one line per bad field, never a traceback.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except ValueError as exc:  # e.g. a nested env var that is not valid JSON
        raise ConfigError(_describe_source_error(exc)) from None


def _describe_source_error(exc: ValueError) -> str:
    """pydantic-settings names only the group (``filters``): name the variables set in it."""
    found = re.search(r'field "?(\w+)"?', str(exc))
    group = found.group(1).upper() if found else ""
    names = sorted(n for n in os.environ if group and n.upper().startswith(f"INGEST_{group}"))
    cause = f" ({exc.__cause__})" if exc.__cause__ else ""
    where = ", ".join(names) if names else f"an INGEST_{group or '*'} variable"
    return (
        f"invalid setting {where}: not a value this setting takes{cause}; a list is JSON "
        '(["a", "b"]) or comma-separated (a,b); a mapping is JSON. Fix or unset it'
    )


def iter_fields(model: type[BaseModel], prefix: str = "INGEST_") -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every leaf setting."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        env = f"{prefix}{name.upper()}"
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(iter_fields(ann, env + "__"))
        else:
            default = field.get_default(call_default_factory=True)
            rows.append((env, "" if default is None else repr(default), field.description or ""))
    return rows
