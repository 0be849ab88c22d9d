"""The worker Job as a plain manifest dict: names, labels, what it inherits, its policy,
and what its status means (the verdict).

Pure (no client, no I/O) so the same code serves the coordinator, the chart test (which
renders the chart, takes the coordinator pod from it and checks the worker Job built from
it) and schema validation. The coordinator reads its own pod and its Job's pod template
through the API, and the worker Job inherits image, env, secret references, volumes,
service account, resources, scheduling, security context, labels and annotations from
them: the chart configures a run once, in one place.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from ingest import __version__
from ingest.errors import ConfigError
from ingest.launch.semantics import (
    JobSpec,
    PodFailureRule,
    PolicyAction,
    Verdict,
    VerdictKind,
    parse_indexes,
)
from ingest.settings import KubernetesSettings

Manifest = dict[str, Any]

RUN_ID_LABEL = "aion-ingest/run-id"
RUN_ID_ANNOTATION = "aion-ingest/run-id"
# The coordinator Job (UID) that created a worker Job: a coordinator finding a Job that
# another coordinator created knows it is a rerun (see KubernetesLauncher.reusable).
CREATOR_ANNOTATION = "aion-ingest/coordinator-uid"
# A digest of the worker Job as built: a coordinator that would build another (new values
# after helm upgrade) replaces a running Job instead of watching a stale one.
TEMPLATE_ANNOTATION = "aion-ingest/template-digest"
WORKERS_OWNER_ANNOTATION = "aion-ingest/workers-owner"
# On the worker pod template: a digest of the workers' ConfigMap (its INGEST_* settings,
# which the pods read through envFrom) less the keys no worker reads. So a `helm upgrade`
# that changes only what the coordinator uses keeps a running worker Job, and one that
# changes what the workers read replaces it (the template digest covers this annotation).
CONFIG_ANNOTATION = "aion-ingest/config-digest"
COMPONENT_LABEL = "app.kubernetes.io/component"
WORKER_COMPONENT = "worker"
WORKER_CONTAINER = "worker"
COORDINATOR_CONTAINER = "coordinator"
# Kubernetes validates Job names as DNS-1123 labels (≤ 63): the name becomes a pod label.
MAX_JOB_NAME = 63
# backoffLimitPerIndex allows at most this many completions (the API server's limit).
MAX_COMPLETIONS = 100_000

# Variables an admission webhook injects from the service account (EKS IRSA, Azure
# workload identity). Copying them into the worker template would clash with the webhook
# injecting them again into the worker pods, which run under the same service account.
_WEBHOOK_ENV = frozenset(
    {
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_STS_REGIONAL_ENDPOINTS",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_AUTHORITY_HOST",
    }
)
# Labels the Job controller puts on its pods (and on the template it stores): a worker Job
# carrying the coordinator's would not match its own selector.
_CONTROLLER_LABELS = ("batch.kubernetes.io/", "controller-uid", "job-name", "pod-template-hash")
# Annotations that describe one pod rather than configure it. Read from a live pod, an
# injector's "already injected" mark (sidecar.istio.io/status,
# vault.hashicorp.com/agent-inject-status) would stop it injecting into the workers.
# Helm's ``checksum/*`` convention marks the coordinator's own config revision: the worker
# template would change with any ConfigMap key (CONFIG_ANNOTATION covers the workers' keys).
_POD_ANNOTATIONS = re.compile(
    r"^(batch\.kubernetes\.io/|kubectl\.kubernetes\.io/|aion-ingest/|checksum/)|status$"
)
# ConfigMap keys no worker reads: the planner's and the launcher's settings (what the
# launcher gives the workers, it writes into the Job spec, which the digest covers) and the
# coordinator's end-of-run Pushgateway push. tests/launch/test_rerun.py checks that the
# worker's code reads none of them.
COORDINATOR_ONLY_KEYS = re.compile(
    r"^INGEST_((PLAN|FILTERS|KUBERNETES)__.+|METRICS__(PUSHGATEWAY_URL|PUSH_TIMEOUT))$",
    re.IGNORECASE,
)

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _digest(text: str, n: int = 10) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def workers_config_digest(data: Mapping[str, str]) -> str:
    """16 hex digits for what the workers read of a ConfigMap: its keys less the
    coordinator's (:data:`COORDINATOR_ONLY_KEYS`)."""
    kept = {k: v for k, v in data.items() if not COORDINATOR_ONLY_KEYS.match(k)}
    return _digest(json.dumps(kept, sort_keys=True, separators=(",", ":")), 16)


def job_name(prefix: str, run_id: str) -> str:
    """A valid, stable worker Job name for any run id: ``<prefix>-<run id>`` when that is
    already a DNS-1123 label, else a lower-cased, cut slug plus a hash of the run id (so
    two run ids never share a name)."""
    plain = f"{prefix}-{run_id}"
    if len(plain) <= MAX_JOB_NAME and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", plain):
        return plain
    slug = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")
    room = MAX_JOB_NAME - len(prefix) - 12  # "-" slug "-" 10 hex digits
    slug = slug[: max(room, 0)].strip("-")
    return "-".join(p for p in (prefix, slug, _digest(run_id)) if p)


def run_label(run_id: str) -> str:
    """The run id as a label value (≤ 63, alphanumerics at both ends), hashed if needed.

    The full run id is also kept in an annotation; the label is for selecting."""
    if len(run_id) <= 63 and _LABEL_VALUE.fullmatch(run_id):
        return run_id
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id)[:52].strip("-_.")
    return f"{slug}-{_digest(run_id)}" if slug else _digest(run_id)


def _strip_webhook_env(env: list[Manifest]) -> list[Manifest]:
    return [e for e in env if e.get("name") not in _WEBHOOK_ENV]


def _own_volume(volume: Manifest) -> bool:
    """False for a projected service-account token (the API server's kube-api-access-*, the
    IRSA and Azure webhooks' tokens): injected per pod, it is left for them to inject again."""
    sources = (volume.get("projected") or {}).get("sources") or []
    return not any("serviceAccountToken" in s for s in sources)


def _inherited_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith(_CONTROLLER_LABELS)}


def _inherited_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if not _POD_ANNOTATIONS.search(k)}


@dataclasses.dataclass(frozen=True)
class OwnerRef:
    """An object whose deletion deletes the worker Job (the garbage collector's owner)."""

    name: str
    uid: str
    kind: str = "Job"
    api_version: str = "batch/v1"

    def manifest(self) -> Manifest:
        # Neither controller nor blockOwnerDeletion: the Job controller must not try to
        # adopt the worker Job, and blockOwnerDeletion would need jobs/finalizers rights.
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        }


@dataclasses.dataclass(frozen=True)
class CoordinatorPodInfo:
    """What the worker pods inherit from the coordinator's pod (camelCase manifest parts).

    ``owner`` is the coordinator's own Job (its name is the default run id, its UID marks
    the worker Jobs it creates). ``workers_owner`` owns the worker Job when set: the chart
    (job mode) names its ConfigMap in the pod annotation ``aion-ingest/workers-owner``, so
    the worker Job survives ``helm upgrade`` (which replaces the coordinator Job) and goes
    with ``helm uninstall``; in cron mode the coordinator Job owns it.
    """

    image: str | None = None
    namespace: str | None = None
    image_pull_policy: str | None = None
    command: list[str] | None = None
    env: list[Manifest] = dataclasses.field(default_factory=list)
    env_from: list[Manifest] = dataclasses.field(default_factory=list)
    resources: Manifest | None = None
    security_context: Manifest | None = None
    volume_mounts: list[Manifest] = dataclasses.field(default_factory=list)
    ports: list[Manifest] = dataclasses.field(default_factory=list)  # "metrics" only
    service_account: str | None = None
    pod_security_context: Manifest | None = None
    node_selector: dict[str, str] | None = None
    tolerations: list[Manifest] | None = None
    affinity: Manifest | None = None
    topology_spread_constraints: list[Manifest] | None = None
    image_pull_secrets: list[Manifest] = dataclasses.field(default_factory=list)
    priority_class_name: str | None = None
    termination_grace_period_seconds: int | None = None
    volumes: list[Manifest] = dataclasses.field(default_factory=list)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    annotations: dict[str, str] = dataclasses.field(default_factory=dict)
    owner: OwnerRef | None = None
    workers_owner: OwnerRef | None = None
    workers_owner_name: str | None = None  # the ConfigMap named by the pod, UID not yet read
    workers_config: str | None = None  # workers_config_digest() of that ConfigMap, once read

    @classmethod
    def from_pod(
        cls,
        pod: Mapping[str, Any],
        container: str = COORDINATOR_CONTAINER,
        template: Mapping[str, Any] | None = None,
    ) -> CoordinatorPodInfo:
        """Read a pod manifest (camelCase, as the API returns it or the chart renders it).

        ``template`` is the pod template of the coordinator's Job, when it could be read:
        then everything but the namespace and owner comes from it, as the chart rendered
        it, free of what admission webhooks add to a live pod (sidecars, injected env and
        volumes, their "injected" annotations). Without it the pod is read, filtered."""
        pod = copy.deepcopy(dict(pod))
        meta = pod.get("metadata") or {}
        source = copy.deepcopy(dict(template)) if template else pod
        source_meta = source.get("metadata") or {}
        spec = source.get("spec") or {}
        containers = spec.get("containers") or []
        if not containers:
            raise ConfigError("the coordinator pod has no container to copy; check the chart")
        main = next((c for c in containers if c.get("name") == container), containers[0])
        volumes = [v for v in spec.get("volumes") or [] if _own_volume(v)]
        kept = {v["name"] for v in volumes}
        owner = next(
            (
                OwnerRef(name=o["name"], uid=o["uid"])
                for o in meta.get("ownerReferences") or []
                if o.get("kind") == "Job" and o.get("uid")
            ),
            None,
        )
        annotations = source_meta.get("annotations") or {}
        return cls(
            image=main.get("image"),
            namespace=meta.get("namespace"),
            image_pull_policy=main.get("imagePullPolicy"),
            command=main.get("command"),
            env=_strip_webhook_env(main.get("env") or []),
            env_from=main.get("envFrom") or [],
            ports=[p for p in main.get("ports") or [] if p.get("name") == "metrics"],
            resources=main.get("resources") or None,
            security_context=main.get("securityContext"),
            volume_mounts=[m for m in main.get("volumeMounts") or [] if m.get("name") in kept],
            service_account=spec.get("serviceAccountName") or spec.get("serviceAccount"),
            pod_security_context=spec.get("securityContext"),
            node_selector=spec.get("nodeSelector"),
            tolerations=spec.get("tolerations"),
            affinity=spec.get("affinity"),
            topology_spread_constraints=spec.get("topologySpreadConstraints"),
            image_pull_secrets=spec.get("imagePullSecrets") or [],
            priority_class_name=spec.get("priorityClassName"),
            termination_grace_period_seconds=spec.get("terminationGracePeriodSeconds"),
            volumes=volumes,
            labels=_inherited_labels(source_meta.get("labels") or {}),
            annotations=_inherited_annotations(annotations),
            owner=owner,
            workers_owner_name=_configmap_name(
                (meta.get("annotations") or {}).get(WORKERS_OWNER_ANNOTATION)
                or annotations.get(WORKERS_OWNER_ANNOTATION)
            ),
        )

    def with_settings(self, k: KubernetesSettings) -> CoordinatorPodInfo:
        """Settings win over what the pod says, where they are set."""
        changes: dict[str, Any] = {}
        for field, value in (
            ("namespace", k.namespace),
            ("image", k.image),
            ("service_account", k.service_account),
            ("resources", k.resources),
            ("node_selector", k.node_selector),
            ("tolerations", k.tolerations),
        ):
            if value is not None:
                changes[field] = value
        return dataclasses.replace(self, **changes)

    @property
    def creator_uid(self) -> str | None:
        """The UID that marks the worker Jobs this coordinator creates (None outside a Job)."""
        return self.owner.uid if self.owner else None

    def worker_job_owner(self) -> OwnerRef | None:
        """The owner the worker Job gets: the chart's ConfigMap (job mode), else the
        coordinator's Job (cron mode, or an older chart), else none (outside a cluster)."""
        return self.workers_owner or self.owner


def _configmap_name(value: str | None) -> str | None:
    """``ConfigMap/<name>`` (the only kind the chart names) → ``<name>``."""
    if not value:
        return None
    kind, _, name = value.partition("/")
    if kind != "ConfigMap" or not name:
        raise ConfigError(
            f"the coordinator pod's annotation {WORKERS_OWNER_ANNOTATION}={value!r} must be "
            "ConfigMap/<name>; check the chart"
        )
    return name


def pod_failure_policy(rules: tuple[PodFailureRule, ...]) -> Manifest:
    """The semantics model's rules in Kubernetes' form (order kept: first match wins)."""
    out: list[Manifest] = []
    for rule in rules:
        if rule.exit_codes is not None:
            out.append(
                {
                    "action": rule.action.value,
                    "onExitCodes": {
                        "containerName": WORKER_CONTAINER,
                        "operator": "In",
                        "values": sorted(rule.exit_codes),
                    },
                }
            )
        elif rule.on_disruption:
            out.append(
                {
                    "action": rule.action.value,
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                }
            )
    if any(r["action"] == PolicyAction.SUCCEED.value for r in out):
        raise ValueError("Succeed is not a pod failure policy action")
    return {"rules": out}


def job_spec(k: KubernetesSettings, shards: int) -> JobSpec:
    """The semantics of this run's worker Job, checked against the API server's limits."""
    if shards > MAX_COMPLETIONS:
        raise ConfigError(
            f"the plan has {shards} shards; an Indexed Job with backoffLimitPerIndex allows "
            f"{MAX_COMPLETIONS}: raise INGEST_PLAN__MAX_ITEMS_PER_SHARD or set INGEST_PLAN__SHARDS"
        )
    max_failed = k.max_failed_indexes
    return JobSpec(
        completions=shards,
        parallelism=min(k.parallelism, shards),
        backoff_limit_per_index=k.backoff_limit_per_index,
        # The API server refuses maxFailedIndexes above completions; the meaning is the same.
        max_failed_indexes=None if max_failed is None else min(max_failed, shards),
    )


def build_worker_job(
    info: CoordinatorPodInfo,
    k: KubernetesSettings,
    *,
    run_id: str,
    state_uri: str,
    shards: int,
) -> Manifest:
    """The worker Indexed Job for run ``run_id`` of ``shards`` shards."""
    if not info.image:
        raise ConfigError(
            "no worker image: set INGEST_KUBERNETES__IMAGE, or run the coordinator in its pod "
            "with POD_NAME and POD_NAMESPACE set (the chart does)"
        )
    spec = job_spec(k, shards)
    name = job_name(k.job_name_prefix, run_id)
    labels = {
        "app.kubernetes.io/name": "aion-ingest",
        "app.kubernetes.io/instance": "aion-ingest",
        "app.kubernetes.io/version": __version__,
        **info.labels,
        COMPONENT_LABEL: WORKER_COMPONENT,
        "app.kubernetes.io/managed-by": "aion-ingest-coordinator",
        RUN_ID_LABEL: run_label(run_id),
    }
    env = [e for e in info.env if e.get("name") != "INGEST_WORKER__PARALLEL_WORKERS"]
    # Every pod of the run shares the API key's request budget: each takes 1/parallelism.
    env.append({"name": "INGEST_WORKER__PARALLEL_WORKERS", "value": str(spec.parallelism)})
    container: Manifest = {
        "name": WORKER_CONTAINER,
        "image": info.image,
        "args": ["work", "--run-id", run_id, "--state", state_uri],
        "env": env,
    }
    optional_container = {
        "command": info.command,
        "imagePullPolicy": info.image_pull_policy,
        "envFrom": info.env_from,
        "resources": info.resources,
        "securityContext": info.security_context,
        "volumeMounts": info.volume_mounts,
        "ports": info.ports,  # the PodMonitor scrapes the port named "metrics"
    }
    container.update({key: v for key, v in optional_container.items() if v})
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        # Workers never call the Kubernetes API; workload identity tokens are projected
        # by their own webhooks and do not need this.
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    optional_pod = {
        "serviceAccountName": info.service_account,
        "securityContext": info.pod_security_context,
        "nodeSelector": info.node_selector,
        "tolerations": info.tolerations,
        "affinity": info.affinity,
        "topologySpreadConstraints": info.topology_spread_constraints,
        "imagePullSecrets": info.image_pull_secrets,
        "priorityClassName": info.priority_class_name,
        "volumes": info.volumes,
    }
    pod_spec.update({key: v for key, v in optional_pod.items() if v})
    if info.termination_grace_period_seconds is not None:  # 0 is a value
        pod_spec["terminationGracePeriodSeconds"] = info.termination_grace_period_seconds
    template_meta: Manifest = {"labels": dict(labels)}
    pod_annotations = dict(info.annotations)
    if info.workers_config:
        pod_annotations[CONFIG_ANNOTATION] = info.workers_config
    if pod_annotations:
        template_meta["annotations"] = pod_annotations
    job_body: Manifest = {
        "completionMode": "Indexed",
        "completions": spec.completions,
        "parallelism": spec.parallelism,
        "backoffLimitPerIndex": spec.backoff_limit_per_index,
        "podFailurePolicy": pod_failure_policy(spec.rules),
        "podReplacementPolicy": "Failed",
        "template": {"metadata": template_meta, "spec": pod_spec},
    }
    if spec.max_failed_indexes is not None:
        job_body["maxFailedIndexes"] = spec.max_failed_indexes
    if k.ttl_seconds_after_finished is not None:
        job_body["ttlSecondsAfterFinished"] = k.ttl_seconds_after_finished
    if k.active_deadline_seconds is not None:
        job_body["activeDeadlineSeconds"] = k.active_deadline_seconds
    owner = info.worker_job_owner()
    annotations = {
        RUN_ID_ANNOTATION: run_id,
        TEMPLATE_ANNOTATION: template_digest(job_body, owner),
    }
    if info.creator_uid:
        annotations[CREATOR_ANNOTATION] = info.creator_uid
    metadata: Manifest = {"name": name, "labels": labels, "annotations": annotations}
    if info.namespace:
        metadata["namespace"] = info.namespace
    if owner is not None:
        metadata["ownerReferences"] = [owner.manifest()]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_body}


def template_digest(spec: Manifest, owner: OwnerRef | None) -> str:
    """What a worker Job is, in 16 hex digits: its spec (pod template included) and owner."""
    body = {"spec": spec, "owner": owner.manifest() if owner else None}
    return _digest(json.dumps(body, sort_keys=True, separators=(",", ":")), 16)


def job_verdict(job: Manifest) -> Verdict | None:
    """The Job's verdict from its status, or None while it runs.

    Only the terminal conditions count (``Complete``, ``Failed``); ``FailureTarget`` and
    ``SuccessCriteriaMet`` come first while pods are still being terminated.
    """
    status = job.get("status") or {}
    completions = int((job.get("spec") or {}).get("completions") or 0)
    succeeded = parse_indexes(status.get("completedIndexes"))
    failed = parse_indexes(status.get("failedIndexes"))
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") == "Complete":
            return Verdict(VerdictKind.COMPLETE, completions, succeeded, failed)
        if cond.get("type") == "Failed":
            reason = cond.get("reason") or ""
            try:
                kind = VerdictKind(reason)
            except ValueError:
                kind = VerdictKind.FAILED
            return Verdict(kind, completions, succeeded, failed, cond.get("message") or reason)
    return None


def progress_line(job: Manifest) -> str:
    """One line on where the Job stands, for the coordinator's log."""
    status = job.get("status") or {}
    completions = int((job.get("spec") or {}).get("completions") or 0)
    done = len(parse_indexes(status.get("completedIndexes")))
    failed = status.get("failedIndexes") or ""
    line = f"{done}/{completions} indexes complete, {status.get('active') or 0} running"
    if status.get("failed"):
        line += f", {status['failed']} pod failures"
    return line + (f", failed indexes {failed}" if failed else "")
