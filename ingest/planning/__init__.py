"""The planner's parts: run ids, the spool, the shard balance, the plan record, its summary.

:mod:`.planner` puts them together (listing → spool → shards → run.json). The plan record
itself, ``run.json``, and the shard line format are :mod:`ingest.state.records`'.
"""
