"""The Grafana dashboard as code (grafana-foundation-sdk), written to the chart.

    make dashboard        # writes charts/aion-ingest/dashboards/aion-ingest.json

tests/metrics/test_dashboard.py checks that the committed JSON equals what this builds,
that every query parses and names only exported or recorded metrics, and (against a real
Prometheus scraping a real run) that every query returns data.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from ingest.metrics.names import FAILURE_REASONS

OUT = pathlib.Path(__file__).resolve().parents[1] / "charts/aion-ingest/dashboards/aion-ingest.json"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
S = 'namespace=~"$namespace",release=~"$release",run_id=~"$run_id"'
RATE = "$__rate_interval"
API = 'endpoint=~"/.*|presigned:PUT"'  # the API and the object store, not source reads
# kube-state-metrics series the worker-pods panel reads (not exported by aion-ingest)
KUBE_STATE_METRICS = ("kube_job_status_active", "kube_job_status_failed")


def q(
    expr: str, legend: str = "", ref: str = "A", *, instant: bool = False
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    if legend:
        query = query.legend_format(legend)
    if instant:
        query = query.instant().format(PromQueryFormat.TABLE)
    return query


def series(title: str, unit: str, *queries: prometheus.Dataquery, w: int = 8) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DS).height(8).span(w)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def rate_by(title: str, unit: str, counter: str, label: str, w: int = 8) -> timeseries.Panel:
    """A time series of ``counter``'s rate summed by ``label``, one line per value."""
    expr = f"sum by ({label}) (rate({counter}{{{S}}}[{RATE}]))"
    return series(title, unit, q(expr, f"{{{{{label}}}}}"), w=w)


def single(title: str, unit: str, query: prometheus.Dataquery, w: int = 4) -> stat.Panel:
    return stat.Panel().title(title).unit(unit).datasource(DS).height(4).span(w).with_target(query)


def variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .include_all(True)
        .all_value(".*")
        .multi(True)
    )


def build() -> dict[str, Any]:
    lat = "aion_ingest_http_request_duration_seconds"
    req = "aion_ingest_http_requests_total"
    d = (
        db.Dashboard("aion-ingest")
        .uid("aion-ingest")
        .description("Runs of aion-ingest: progress, throughput, failures, API health, quota.")
        .tags(["aion-ingest"])
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            variable("namespace", "Namespace", "label_values(aion_ingest_build_info, namespace)")
        )
        .with_variable(
            variable(
                "release",
                "Release",
                'label_values(aion_ingest_build_info{namespace=~"$namespace"}, release)',
            )
        )
        .with_variable(
            variable(
                "run_id",
                "Run id",
                "label_values(aion_ingest_build_info"
                '{namespace=~"$namespace",release=~"$release"}, run_id)',
            )
        )
        .with_row(db.Row("Progress"))
        .with_panel(
            single(
                "Progress",
                "percent",
                q(
                    f"100 * sum(aion_ingest_run_objects_done{{{S}}})"
                    f" / sum(aion_ingest_run_objects_planned{{{S}}})"
                ),
            )
        )
        .with_panel(single("ETA", "s", q(f"max(aion_ingest_run_eta_seconds{{{S}}})")))
        .with_panel(single("Objects done", "short", q(f"sum(aion_ingest_run_objects_done{{{S}}})")))
        .with_panel(single("Bytes done", "bytes", q(f"sum(aion_ingest_run_bytes_done{{{S}}})")))
        .with_panel(
            single(
                "Quota left (files)", "short", q(f"min(aion_ingest_quota_available_files{{{S}}})")
            )
        )
        .with_panel(
            single(
                "Phase",
                "none",
                q(f"max by (phase) (aion_ingest_run_phase{{{S}}}) == 1", "{{phase}}"),
            )
        )
        .with_row(db.Row("Throughput"))
        .with_panel(
            rate_by("Objects/s by outcome", "ops", "aion_ingest_objects_total", "outcome", w=12)
        )
        .with_panel(rate_by("Bytes/s by route", "Bps", "aion_ingest_bytes_total", "route", w=12))
        .with_row(db.Row("Failures"))
        .with_panel(
            series(
                "Failure ratio",
                "percentunit",
                q(
                    f'sum(rate(aion_ingest_objects_total{{{S},outcome="failed"}}[{RATE}]))'
                    f" / sum(rate(aion_ingest_objects_total{{{S}}}[{RATE}]))",
                    "failed / all",
                ),
                w=12,
            )
        )
        .with_panel(
            series(
                "Failures by reason",
                "ops",
                q(
                    f"sum by (reason) (rate(aion_ingest_object_failures_total{{{S}}}[{RATE}]))",
                    "{{reason}}",
                ),
                w=12,
            ).description(
                "Failed objects by failure code, the same codes as the report (report.csv's "
                f"code column, report.json's failed_by_reason): {', '.join(FAILURE_REASONS)}. "
                "report.csv has each object's reason in words."
            )
        )
        .with_row(db.Row("API"))
        .with_panel(
            series(
                "Latency by endpoint (p50, p95, p99)",
                "s",
                *(
                    q(
                        f"histogram_quantile({p}, "
                        f"sum by (endpoint, le) (rate({lat}_bucket{{{S}}}[{RATE}])))",
                        f"p{int(p * 100)} {{{{endpoint}}}}",
                        ref,
                    )
                    for p, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
                ),
                w=12,
            )
        )
        .with_panel(
            series(
                "Requests by status code",
                "reqps",
                q(f"sum by (code) (rate({req}{{{S},{API}}}[{RATE}]))", "{{code}}"),
                w=12,
            )
        )
        .with_panel(
            series(
                "429 ratio",
                "percentunit",
                q(
                    f'sum(rate({req}{{{S},code="429"}}[{RATE}]))'
                    f" / sum(rate({req}{{{S},{API}}}[{RATE}]))",
                    "429 / requests",
                ),
            )
        )
        .with_panel(
            series(
                "Pacing (requests/s, all workers)",
                "reqps",
                q(f"sum(aion_ingest_pacing_requests_per_second{{{S}}})", "limiter rate"),
            )
        )
        .with_panel(rate_by("Retries by cause", "ops", "aion_ingest_retries_total", "cause"))
        .with_row(db.Row("Workers"))
        .with_panel(
            series(
                "In flight",
                "short",
                q(f"sum(aion_ingest_in_flight_objects{{{S}}})", "objects"),
                q(f"sum(aion_ingest_in_flight_bytes{{{S}}})", "bytes", "B"),
            )
        )
        .with_panel(
            series(
                "Queue depths",
                "short",
                q(f"sum by (queue) (aion_ingest_queue_items{{{S}}})", "{{queue}}"),
            )
        )
        .with_panel(
            series(
                "Worker pods and shards",
                "short",
                q(
                    'sum(kube_job_status_active{namespace=~"$namespace",job_name=~".*$run_id.*"})',
                    "pods active",
                ),
                q(
                    'sum(kube_job_status_failed{namespace=~"$namespace",job_name=~".*$run_id.*"})',
                    "pods failed",
                    "B",
                ),
                q(f"max by (state) (aion_ingest_run_shards{{{S}}})", "shards {{state}}", "C"),
            )
        )
        .with_panel(
            table.Panel()
            .title("Shards")
            .datasource(DS)
            .height(10)
            .span(24)
            .with_target(
                q(
                    f"max by (run_id, shard) (aion_ingest_shard_objects_done{{{S}}})",
                    ref="A",
                    instant=True,
                )
            )
            .with_target(
                q(
                    f"max by (run_id, shard) (aion_ingest_shard_objects_planned{{{S}}})",
                    ref="B",
                    instant=True,
                )
            )
            .with_target(
                q(
                    "time() - max by (run_id, shard) "
                    f"(aion_ingest_last_progress_timestamp_seconds{{{S}}})",
                    ref="C",
                    instant=True,
                )
            )
        )
    )
    encoded: dict[str, Any] = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
