"""Prometheus metrics: what a worker serves, what a run serves, what a run pushes.

Nothing here keeps counters of its own: collectors read the worker's accounting, its
limiter, its queues and the client's request stats at scrape time (rclone's pattern), and
the run's progress model through :class:`~ingest.metrics.run.RunProgress`, so metrics, the
progress lines and the report cannot disagree. The only third-party client imported here
(and only here) is ``prometheus_client``. A failing endpoint or push never fails a run: it
logs once and goes on.

- ``names``: every exported name, label and value set (a public interface);
- ``requests``: the API client's observer (latency histogram, retries by cause);
- ``worker``: the collector of one worker;
- ``run``: the collector of a whole run, from a progress snapshot;
- ``server``: ``/metrics`` on the event loop;
- ``push``: the end-of-run push to a Pushgateway.
"""
