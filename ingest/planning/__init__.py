"""The planner's parts: run ids, the spool, the shard balance, the plan record, its summary.

:mod:`ingest.plan` puts them together (listing → spool → shards → run.json).
"""
