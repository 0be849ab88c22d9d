"""The worker Job on Kubernetes: create it once per run, watch it to its end.

The only module that imports the official ``kubernetes`` client. The client is
synchronous, so every call runs in a thread (``asyncio.to_thread``); the watch is a
blocking generator pulled one event at a time the same way.

Idempotence: the Job's name derives from the run id, and before creating it the
launcher looks for a Job labelled with the run id; a 409 AlreadyExists means another
coordinator (or this one, before a restart) won the race, and its Job is adopted. A run
never has two Jobs at once.

Reruns: a Job this coordinator cannot continue (it failed and another coordinator Job
made it; its owner is gone; the workers' values changed) is deleted with a UID
precondition and waited for (``reusable``, ``retire``); the state store keeps every
checkpoint, so the next Job resumes the shards that are not complete.

The watch is a list-then-watch loop (a reflector for one object): list to get the state
and a resourceVersion, watch from there with a server-side timeout; when the watch ends
(timeout, dropped connection, read timeout) list again, which doubles as a periodic
resync; a 410 Gone (the resourceVersion is too old) also just lists again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import kubernetes
import urllib3
from kubernetes.client import ApiException

from ingest.errors import ConfigError, FatalError, IngestError, RetryableError
from ingest.launch.jobspec import (
    COMPONENT_LABEL,
    CREATOR_ANNOTATION,
    RUN_ID_LABEL,
    TEMPLATE_ANNOTATION,
    WORKER_COMPONENT,
    CoordinatorPodInfo,
    Manifest,
    OwnerRef,
    build_worker_job,
    job_name,
    job_verdict,
    run_label,
    workers_config_digest,
)
from ingest.launch.semantics import Verdict, VerdictKind
from ingest.settings import KubernetesSettings

log = logging.getLogger(__name__)

_GONE = 410
_SERVICE_ACCOUNT_NS = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


@dataclasses.dataclass(frozen=True)
class Clients:
    """The API groups the launcher needs, over one ApiClient."""

    api: kubernetes.client.ApiClient

    @property
    def batch(self) -> kubernetes.client.BatchV1Api:
        return kubernetes.client.BatchV1Api(self.api)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    def plain(self, obj: Any) -> Any:
        """A client model as the camelCase dict the API sent."""
        return self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    @classmethod
    def for_host(cls, host: str) -> Clients:
        """Clients for an API server at ``host`` with no auth (tests, ``kubectl proxy``)."""
        config = kubernetes.client.Configuration()
        config.host = host.rstrip("/")
        return cls(kubernetes.client.ApiClient(config))

    @classmethod
    def connect(cls, k: KubernetesSettings) -> Clients:
        """In-cluster config inside a pod, else the kubeconfig (setting, KUBECONFIG, ~/.kube)."""
        config = kubernetes.client.Configuration()
        try:
            if k.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                kubernetes.config.load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
            else:
                kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=k.kubeconfig, client_configuration=config
                )
        except (kubernetes.config.ConfigException, OSError) as exc:
            raise ConfigError(
                f"cannot configure the Kubernetes client ({exc}); run in a pod or set "
                "INGEST_KUBERNETES__KUBECONFIG / KUBECONFIG"
            ) from None
        return cls(kubernetes.client.ApiClient(config))


def translate(exc: Exception, doing: str) -> IngestError:
    """An API or network error as one of ours, classified by what to do about it."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status in (401, 403):
            return FatalError(
                f"Kubernetes refused to {doing}: the service account lacks the right; "
                "install the chart with rbac.create=true or grant it",
                status=status,
            )
        if status in (400, 404, 422):
            return ConfigError(f"Kubernetes could not {doing}: {exc.reason}", status=status)
        return RetryableError(f"Kubernetes failed to {doing}: {exc.reason}", status=status)
    return RetryableError(f"cannot reach Kubernetes to {doing}: {type(exc).__name__}")


_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)


class KubernetesLauncher:
    """Find or create the worker Job of a run, and wait for its verdict."""

    def __init__(self, clients: Clients, k: KubernetesSettings) -> None:
        self.clients = clients
        self.settings = k

    # -- the coordinator's pod -----------------------------------------------------

    async def pod_info(self, env: dict[str, str] | None = None) -> CoordinatorPodInfo:
        """What the workers inherit: the coordinator's own pod (POD_NAME/POD_NAMESPACE from
        the downward API) when it runs in one, else nothing but the settings.

        In a pod it also reads its Job's pod template (the chart's values as rendered, free
        of webhook injections) and the ConfigMap the chart names as the workers' owner."""
        env = dict(os.environ) if env is None else env
        name, namespace = env.get("POD_NAME"), env.get("POD_NAMESPACE")
        if name and namespace:
            try:
                pod = await asyncio.to_thread(
                    self.clients.core.read_namespaced_pod, name, namespace
                )
            except (ApiException, *_NETWORK_ERRORS) as exc:
                raise translate(exc, f"read the coordinator pod {namespace}/{name}") from None
            plain = self.clients.plain(pod)
            info = CoordinatorPodInfo.from_pod(plain)
            if info.owner is not None:
                job = await self.read(namespace, info.owner.name)
                if job is not None and _uid(job) == info.owner.uid:
                    template = (job.get("spec") or {}).get("template")
                    info = CoordinatorPodInfo.from_pod(plain, template=template)
            if info.workers_owner_name:
                owner, data = await self._config_map(namespace, info.workers_owner_name)
                info = dataclasses.replace(
                    info, workers_owner=owner, workers_config=workers_config_digest(data)
                )
        else:
            info = CoordinatorPodInfo(namespace=_own_namespace())
        info = info.with_settings(self.settings)
        if not info.namespace:
            info = dataclasses.replace(info, namespace="default")
        return info

    async def _config_map(self, namespace: str, name: str) -> tuple[OwnerRef, dict[str, str]]:
        """The release's ConfigMap as the workers' owner, and its data (their settings)."""
        try:
            found = await asyncio.to_thread(
                self.clients.core.read_namespaced_config_map, name, namespace
            )
        except (ApiException, *_NETWORK_ERRORS) as exc:
            raise translate(exc, f"read the ConfigMap {namespace}/{name}") from None
        plain = self.clients.plain(found)
        uid = _uid(plain)
        if not uid:  # pragma: no cover - the API server always sets one
            raise RetryableError(f"the ConfigMap {namespace}/{name} has no uid yet")
        owner = OwnerRef(name=name, uid=uid, kind="ConfigMap", api_version="v1")
        return owner, dict(plain.get("data") or {})

    # -- create once ---------------------------------------------------------------

    async def find(self, namespace: str, run_id: str) -> Manifest | None:
        """The run's worker Job, found by its run-id label, or None."""
        selector = f"{RUN_ID_LABEL}={run_label(run_id)},{COMPONENT_LABEL}={WORKER_COMPONENT}"
        try:
            found = await asyncio.to_thread(
                self.clients.batch.list_namespaced_job, namespace, label_selector=selector
            )
        except (ApiException, *_NETWORK_ERRORS) as exc:
            raise translate(exc, f"list Jobs in {namespace}") from None
        jobs: list[Manifest] = [
            job
            for job in self.clients.plain(found).get("items", [])
            if _labels(job).get(RUN_ID_LABEL) == run_label(run_id)
            and _labels(job).get(COMPONENT_LABEL) == WORKER_COMPONENT
        ]
        return jobs[0] if jobs else None

    async def create(
        self, info: CoordinatorPodInfo, *, run_id: str, state_uri: str, shards: int
    ) -> Manifest:
        """Create the worker Job; adopt the one that exists already for this run."""
        body = build_worker_job(
            info, self.settings, run_id=run_id, state_uri=state_uri, shards=shards
        )
        namespace = body["metadata"]["namespace"]
        name = body["metadata"]["name"]
        try:
            created = await asyncio.to_thread(
                self.clients.batch.create_namespaced_job, namespace, cast(Any, body)
            )
            log.info("created worker Job %s/%s: %d indexes", namespace, name, shards)
            return dict(self.clients.plain(created))
        except ApiException as exc:
            if exc.status != 409:
                raise translate(exc, f"create the worker Job {namespace}/{name}") from None
        except _NETWORK_ERRORS as exc:
            raise translate(exc, f"create the worker Job {namespace}/{name}") from None
        existing = await self.read(namespace, name)
        if existing is None or _labels(existing).get(RUN_ID_LABEL) != run_label(run_id):
            raise ConfigError(
                f"a Job named {namespace}/{name} exists and belongs to another run; "
                "delete it or set INGEST_KUBERNETES__JOB_NAME_PREFIX"
            )
        log.info("adopted worker Job %s/%s (created concurrently)", namespace, name)
        return existing

    async def read(self, namespace: str, name: str) -> Manifest | None:
        try:
            job = await asyncio.to_thread(self.clients.batch.read_namespaced_job, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc, f"read the Job {namespace}/{name}") from None
        except _NETWORK_ERRORS as exc:
            raise translate(exc, f"read the Job {namespace}/{name}") from None
        return dict(self.clients.plain(job))

    # -- rerun: retire a Job this coordinator cannot continue ------------------------

    async def reusable(
        self, info: CoordinatorPodInfo, *, run_id: str, state_uri: str
    ) -> Manifest | None:
        """The run's worker Job to watch, or None when a new one is to be created.

        A Job that cannot serve this coordinator is retired first (:meth:`retire`; every
        checkpoint stays in the state store, so the new Job resumes the shards that are
        not complete, and complete ones finish at once):

        - it ended without completing and another coordinator Job created it: a rerun
          (``helm upgrade``, an install after ``helm uninstall``, ``aion-ingest coordinate``
          by hand). The coordinator that created it (restarted pod) reports it instead;
        - it runs, another coordinator Job created it, and this one would build it with
          another owner (the release was reinstalled: its old owner is gone) or another
          template (``helm upgrade`` changed what the workers get);
        - it is being deleted (``helm uninstall``'s garbage collection): waited for.

        A Complete Job is always kept: its run is done, the report is merged again.
        Outside a cluster (no coordinator Job) a running Job is watched, never replaced.
        """
        namespace = info.namespace or "default"
        job = await self.find(namespace, run_id)
        if job is None:
            return None
        meta = job.get("metadata") or {}
        created_by = (meta.get("annotations") or {}).get(CREATOR_ANNOTATION)
        ours = info.creator_uid is not None and created_by == info.creator_uid
        why: str | None = None
        if meta.get("deletionTimestamp"):
            why = "it is being deleted"
        else:
            verdict = job_verdict(job)
            if verdict is not None:
                if verdict.kind is not VerdictKind.COMPLETE and not ours:
                    why = f"it ended {verdict.kind.value}: a rerun"
            elif not ours and info.creator_uid is not None:
                why = self._outdated(job, info, run_id=run_id, state_uri=state_uri)
        if why is None:
            return job
        await self.retire(job, why)
        return None

    def _outdated(
        self, job: Manifest, info: CoordinatorPodInfo, *, run_id: str, state_uri: str
    ) -> str | None:
        """Why a running Job differs from the one this coordinator would create, or None."""
        owner = info.worker_job_owner()
        if owner is not None and owner.uid not in {
            o.get("uid") for o in (job.get("metadata") or {}).get("ownerReferences") or []
        }:
            return f"its owner is not this release's {owner.kind} {owner.name}"
        had = ((job.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_ANNOTATION)
        shards = int((job.get("spec") or {}).get("completions") or 0)
        if had and shards:
            wanted = build_worker_job(
                info, self.settings, run_id=run_id, state_uri=state_uri, shards=shards
            )
            if wanted["metadata"]["annotations"][TEMPLATE_ANNOTATION] != had:
                return "the release's values changed what the workers get"
        return None

    async def retire(self, job: Manifest, why: str) -> None:
        """Delete ``job`` (this very object: UID precondition) and wait until it is gone.

        Finished: propagation Background (its pods have ended). Running: Foreground, so
        the Job goes only once its workers have flushed their checkpoints and exited,
        and no new worker overlaps an old one on a shard. The state store is untouched.
        A Job already gone, or replaced by another with the same name, is left alone."""
        meta = job["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        finished = job_verdict(job) is not None
        policy = "Background" if finished else "Foreground"
        log.info("worker Job %s/%s: deleting it, %s; checkpoints are kept", namespace, name, why)
        if not meta.get("deletionTimestamp"):
            body = kubernetes.client.V1DeleteOptions(
                propagation_policy=policy,
                preconditions=kubernetes.client.V1Preconditions(uid=uid),
            )
            try:
                await asyncio.to_thread(
                    self.clients.batch.delete_namespaced_job, name, namespace, body=body
                )
            except ApiException as exc:
                if exc.status not in (404, 409):  # gone already; 409: another object now
                    raise translate(exc, f"delete the Job {namespace}/{name}") from None
            except _NETWORK_ERRORS as exc:
                raise translate(exc, f"delete the Job {namespace}/{name}") from None
        async for state in self.states(namespace, name):
            if state is None or _uid(state) != uid:
                return

    # -- watch to the end -------------------------------------------------------------

    async def states(self, namespace: str, name: str) -> AsyncIterator[Manifest | None]:
        """Each new state of the Job (None: it is gone), surviving timeouts and 410 Gone."""
        stop = threading.Event()
        stream = JobStream(self.clients, namespace, name, self.settings.watch_seconds, stop)
        events = iter(stream)
        try:
            while True:
                state = await asyncio.to_thread(next, events, _END)
                if state is _END:
                    return
                yield state
        finally:
            stream.close()  # unblocks the thread if it is waiting in a read

    async def wait(
        self,
        job: Manifest,
        on_change: Callable[[Manifest], None] | None = None,
    ) -> Verdict:
        """Watch ``job`` until it ends; its verdict."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        seen: Any = None
        async for state in self.states(namespace, name):
            if state is None:
                raise RetryableError(
                    f"the worker Job {namespace}/{name} was deleted before it ended; "
                    "run the coordinator again to resume from the checkpoints"
                )
            status = state.get("status") or {}
            if status != seen:
                seen = status
                if on_change is not None:
                    on_change(state)
            verdict = job_verdict(state)
            if verdict is not None:
                return verdict
        raise RetryableError(f"the watch of {namespace}/{name} stopped")  # pragma: no cover


_END: Any = object()


class JobStream:
    """A blocking iterator over one Job's states: list, watch, repeat.

    Yields the Job (camelCase dict) at every list and every watch event, None when it
    does not exist. Ends only when ``stop`` is set.
    """

    def __init__(
        self,
        clients: Clients,
        namespace: str,
        name: str,
        watch_seconds: int,
        stop: threading.Event,
    ) -> None:
        self.clients = clients
        self.namespace = namespace
        self.name = name
        self.watch_seconds = watch_seconds
        self.stop = stop
        self.lists = 0  # relists, for tests and logs
        self.network_failures = 0
        self.max_failures = 10
        self._watch: Any = None

    def close(self) -> None:
        """Stop, from any thread: shut the open watch connection so its read returns."""
        self.stop.set()
        resp = getattr(self._watch, "_resp", None)  # the kubernetes Watch's open response
        if resp is not None:
            with contextlib.suppress(Exception):  # already closed or back in the pool
                resp.shutdown()

    def __iter__(self) -> Iterator[Manifest | None]:
        selector = f"metadata.name={self.name}"
        batch = self.clients.batch
        while not self.stop.is_set():
            try:
                listed = batch.list_namespaced_job(self.namespace, field_selector=selector)
                self.lists += 1
                body = self.clients.plain(listed)
                items = [j for j in body.get("items", []) if _name(j) == self.name]
                yield items[0] if items else None
                version = (body.get("metadata") or {}).get("resourceVersion")
                watch = self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
                kwargs: dict[str, Any] = {
                    "field_selector": selector,
                    "timeout_seconds": self.watch_seconds,
                    # A client-side read timeout past the server's: a silent, half-dead
                    # connection cannot hang the coordinator for ever.
                    "_request_timeout": self.watch_seconds + 15,
                    "allow_watch_bookmarks": True,
                }
                if version:
                    kwargs["resource_version"] = version
                stream = watch.stream(batch.list_namespaced_job, self.namespace, **kwargs)  # type: ignore[no-untyped-call]
                for event in stream:
                    if self.stop.is_set():
                        watch.stop()  # type: ignore[no-untyped-call]
                        break
                    obj = event.get("raw_object") or {}
                    if event.get("type") == "BOOKMARK" or _name(obj) != self.name:
                        continue
                    yield None if event.get("type") == "DELETED" else obj
                self.network_failures = 0
            except ApiException as exc:
                if exc.status == _GONE:
                    log.info("watch of Job %s: 410 Gone, listing again", self.name)
                    continue
                if (exc.status or 0) < 500 and exc.status != 429:
                    raise translate(exc, f"watch the Job {self.namespace}/{self.name}") from None
                self._interrupted(exc)
            except _NETWORK_ERRORS as exc:
                self._interrupted(exc)

    def _interrupted(self, exc: Exception) -> None:
        """Read timeouts, dropped connections, 5xx: back off a little, then list again.
        Too many in a row and the API server is gone: exit 1, the coordinator pod retries."""
        self.network_failures += 1
        log.warning("watch of Job %s interrupted (%s); resuming", self.name, type(exc).__name__)
        if self.network_failures > self.max_failures:
            raise translate(exc, f"watch the Job {self.namespace}/{self.name}") from None
        self.stop.wait(min(0.1 * 2.0**self.network_failures, 10.0))


def _labels(obj: Manifest) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _uid(obj: Manifest) -> str | None:
    return (obj.get("metadata") or {}).get("uid")


def _name(obj: Manifest) -> str | None:
    return (obj.get("metadata") or {}).get("name")


def _own_namespace() -> str | None:
    try:
        with open(_SERVICE_ACCOUNT_NS, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


__all__ = [
    "Clients",
    "JobStream",
    "KubernetesLauncher",
    "job_name",
    "translate",
]
