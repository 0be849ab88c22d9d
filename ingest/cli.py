"""argv → :mod:`ingest.commands`. Each command's module is imported only when it runs.

Every command returns an exit code (DESIGN.md's table). Errors of this project end as one
line on stderr and their exit code; anything else escaping is a bug and gets a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ingest import __version__
from ingest.errors import ConfigError, ExitCode, IngestError
from ingest.logs import redact, register_secret, setup_logging
from ingest.settings import Settings, iter_fields, load_settings

Command = Callable[[argparse.Namespace, Settings], int]


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``-p 0`` would run nothing)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line: argparse dests named ``group.field``."""
    overrides: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if value is None or "." not in dest:
            continue
        group, field = dest.split(".", 1)
        overrides.setdefault(group, {})[field] = value
    if getattr(args, "state", None):
        overrides["state"] = args.state
    return overrides


def _settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment settings, with the command line's values on top."""
    return load_settings(**_overrides(args))


def _cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    for env, default, description in iter_fields(Settings):
        print(f"{env}\n    {description}" + (f" [default: {default}]" if default else ""))
    return 0


def _cmd_sandbox(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from ingest.sandbox.server import main as sandbox_main
    except ModuleNotFoundError as exc:  # the production image leaves the sandbox extra out
        raise ConfigError(
            f"the sandbox needs the 'sandbox' extra ({exc.name} is not installed): "
            "pip install 'aion-ingest[sandbox]', or use the image's sandbox target"
        ) from None

    return sandbox_main(args)


def _cmd_plan(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.plan import plan_command

    dry_run, limit = args.dry_run, args.limit
    plan = plan_command(
        args.source, settings, run_id=args.run_id, as_json=args.json, dry_run=dry_run, limit=limit
    )
    return asyncio.run(plan)


def _cmd_work(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.worker.run import index_from_env, work

    return int(asyncio.run(work(settings, args.run_id, index_from_env(args.index))))


def _add_work_parser(sub: Any) -> None:
    p = sub.add_parser("work", help="upload one shard of a planned run (one Job index)")
    p.add_argument("--run-id", required=True, help="the run to work on")
    p.add_argument("--state", help="state store URI: s3://bucket/prefix or file:///path")
    p.add_argument(
        "--index", type=int, help="shard index; default: JOB_COMPLETION_INDEX from the Job"
    )
    p.add_argument(
        "--metrics-port",
        dest="metrics.port",
        type=int,
        help="serve Prometheus /metrics on this port while working (0: any free port)",
    )
    p.set_defaults(func=_cmd_work)


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    """Options that shape a plan, shared by ``plan`` and ``run``."""
    p.add_argument("--state", help="state store URI: s3://bucket/prefix or file:///path")
    p.add_argument("--run-id", help="use this run id (a-z, 0-9, '-'); default: a new one")
    p.add_argument("--shards", dest="plan.shards", type=int, help="number of shards")
    p.add_argument("--max-items-per-shard", dest="plan.max_items_per_shard", type=int)
    p.add_argument("--max-bytes-per-shard", dest="plan.max_bytes_per_shard", type=int)
    p.add_argument(
        "--ignore-quota",
        dest="plan.ignore_quota",
        action="store_const",
        const=True,
        help="plan even when quota-check says no",
    )
    p.add_argument(
        "--deadline", dest="plan.deadline", help="warn unless the run fits, e.g. 6h (45s, 90m, 2d)"
    )
    p.add_argument("--include", dest="filters.include", action="append", metavar="GLOB")
    p.add_argument("--exclude", dest="filters.exclude", action="append", metavar="GLOB")
    _add_ledger_options(p)


def _add_ledger_options(p: argparse.ArgumentParser) -> None:
    """A recurring import's options, shared by ``plan``, ``run`` and ``coordinate``."""
    p.add_argument(
        "--ledger",
        dest="plan.ledger",
        metavar="NAME",
        help="a recurring import: send only what ledger NAME does not hold as sent, record it",
    )
    p.add_argument(
        "--changed",
        dest="plan.changed",
        choices=["upload", "skip"],
        help="with --ledger, objects changed since sent: upload again (default) or skip",
    )


def _add_plan_parser(sub: Any) -> None:
    p = sub.add_parser("plan", help="list the source, cut it into shards, write the plan")
    p.add_argument("source", metavar="SOURCE", help="s3://bucket/prefix, a manifest, or a folder")
    _add_plan_options(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--dry-run", action="store_true", help="compute and print; write nothing")
    p.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help="with --dry-run: stop listing after N objects (a quick preflight of the source, "
        "the API key and the quota; the summary says the listing was cut short)",
    )
    p.set_defaults(func=_cmd_plan)


def _env_overrides(args: argparse.Namespace) -> dict[str, str]:
    from ingest.commands.run import overrides_to_env

    overrides = _overrides(args)
    overrides.pop("state", None)
    return overrides_to_env(overrides)


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.run import run_command

    if args.source and args.retry_failed:
        raise ConfigError("give SOURCE or --retry-failed RUN_ID, not both")
    if args.all and not args.retry_failed:
        raise ConfigError("--all goes with --retry-failed RUN_ID")
    return asyncio.run(
        run_command(
            args.source,
            settings,
            parallelism=args.parallelism,
            run_id=args.run_id,
            retry_failed=args.retry_failed,
            retry_all=args.all,
            env_overrides=_env_overrides(args),
            as_json=args.json,
        )
    )


def _cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.run import resume_command

    return asyncio.run(
        resume_command(
            args.run_id,
            settings,
            parallelism=args.parallelism,
            env_overrides=_env_overrides(args),
            as_json=args.json,
        )
    )


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.status import status_command

    return asyncio.run(
        status_command(args.run_id, settings, as_json=args.json, sample_seconds=args.sample_seconds)
    )


def _cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.runs import runs_command

    return asyncio.run(runs_command(settings))


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.status import report_command

    return asyncio.run(report_command(args.run_id, settings, failed_only=args.failed_only))


def _cmd_coordinate(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.coordinate import coordinate_command

    return asyncio.run(coordinate_command(args.source, settings, args.run_id))


def _add_coordinate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "coordinate", help="in a cluster: plan, launch the worker Indexed Job, watch, report"
    )
    p.add_argument("source", metavar="SOURCE", help="s3://bucket/prefix or a manifest")
    _add_plan_options(p)
    p.set_defaults(func=_cmd_coordinate)


def _add_metrics_port(p: Any) -> None:
    p.add_argument(
        "--metrics-port",
        dest="metrics.port",
        type=int,
        help="serve Prometheus /metrics of the whole run (run and workers) on this port",
    )


def _add_local_run_parsers(sub: Any) -> None:
    state_help = "state store URI (default: a folder under the user's data directory)"
    p = sub.add_parser("run", help="plan, upload with local worker processes, report")
    p.add_argument(
        "source", metavar="SOURCE", nargs="?", help="s3://bucket/prefix, a manifest, or a folder"
    )
    _add_plan_options(p)
    p.add_argument(
        "-p",
        "--parallelism",
        type=_positive,
        default=2,
        help="worker processes at once, and the fewest shards planned (default 2)",
    )
    p.add_argument(
        "--retry-failed",
        metavar="RUN_ID",
        help="plan a new run from RUN_ID's retryable failed items",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="with --retry-failed: retry every failure, those no retry can fix included",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    _add_metrics_port(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("resume", help="relaunch the shards of a run that are not complete")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--state", help=state_help)
    p.add_argument(
        "-p", "--parallelism", type=_positive, default=2, help="worker processes at once"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    _add_metrics_port(p)
    p.set_defaults(func=_cmd_resume)

    p = sub.add_parser("status", help="per-shard progress of a run, from the state store")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--state", help=state_help)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--sample-seconds",
        type=float,
        default=5.0,
        help="while shards run: seconds between two samples for the rate and ETA (0: none)",
    )
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("runs", help="the runs in the state store, newest first, with status")
    p.add_argument("--state", help=state_help)
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("report", help="merge a run's results into report.json and report.csv")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--state", help=state_help)
    p.add_argument(
        "--failed-only", action="store_true", help="also write failed.csv, just the failures"
    )
    p.set_defaults(func=_cmd_report)


def _cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.commands.ledger import ledger_command

    return asyncio.run(
        ledger_command(
            args.name,
            settings,
            export=args.export,
            rebuild_from=args.rebuild_from,
            as_json=args.json,
        )
    )


def _add_ledger_parser(sub: Any) -> None:
    p = sub.add_parser("ledger", help="what a recurring import has sent: summary, export, rebuild")
    p.add_argument("name", metavar="NAME", help="the import's ledger name")
    p.add_argument("--state", help="state store URI: s3://bucket/prefix or file:///path")
    p.add_argument("--export", metavar="FILE.csv", help="write key -> image id ('-': stdout)")
    p.add_argument(
        "--rebuild-from", nargs="+", metavar="RUN_ID", help="make the ledger anew from these runs"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_ledger)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aion-ingest",
        description="Bulk ingestion of S3 objects into the Aionvision Uploads API.",
        epilog="Settings also come from INGEST_* environment variables: see "
        "'aion-ingest settings'.",
    )
    parser.add_argument("--version", action="version", version=f"aion-ingest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("settings", help="list every setting, its variable and default")
    p.set_defaults(func=_cmd_settings)

    p = sub.add_parser("sandbox", help="run a local Aionvision-compatible API server")
    from ingest.sandbox.options import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(p)
    p.set_defaults(func=_cmd_sandbox)

    _add_plan_parser(sub)
    _add_local_run_parsers(sub)
    _add_work_parser(sub)
    _add_coordinate_parser(sub)
    _add_ledger_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        settings = _settings_from_args(args)
        if settings.api.key is not None:
            register_secret(settings.api.key.get_secret_value())
        fmt = settings.log.format
        if fmt == "auto" and args.command not in ("work", "coordinate"):
            fmt = "text"  # people read these commands' stderr, with the run's own lines
        setup_logging(fmt, settings.log.level)
        return func(args, settings)
    except IngestError as exc:
        print(redact(f"aion-ingest: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return 130
    except asyncio.CancelledError:
        return int(ExitCode.TRANSIENT)


if __name__ == "__main__":
    raise SystemExit(main())
