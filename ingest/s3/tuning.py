"""CPU that aiobotocore spends on every GetObject for nothing, trimmed (measured, not guessed).

``bench/worker_throughput.py --profile`` (cProfile on CPU time, 2,000 objects of 64 KiB)
put about 80% of ``aion-ingest work``'s CPU inside aiobotocore's ``get_object``: of that,
endpoint resolution about a quarter, the User-Agent header about a tenth. Both are the
same answer recomputed for every object:

- *Endpoint rules.* botocore caches endpoint resolution (an LRU keyed on the rule
  parameters), but S3's operations pass ``Key`` (and ``Prefix``, ``CopySource``) as rule
  parameters, so every new key misses the cache and walks ~60 rule functions, though no
  rule of the S3 ruleset reads those parameters. Dropping parameters *no rule refers to*
  cannot change the endpoint, and makes every GET of a bucket a cache hit. The check is
  made on the loaded ruleset, so a future ruleset that does read ``Key`` keeps it.
- *User-Agent.* Rebuilt and sanitised per request; the same string every time except
  for SDK usage-metrics feature ids, which are telemetry. It is built once per client.

Both reach into botocore internals; each step checks the attribute it needs exists and
otherwise leaves the client as it is (a later botocore is slower, never wrong).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


def trim_request_overhead(client: Any) -> None:
    """Apply both trims to an aiobotocore client (see the module docstring)."""
    _cache_endpoints(client)
    _fixed_user_agent(client)


def _refs(node: Any, seen: set[int] | None = None) -> Iterator[str]:
    """Every parameter name a ruleset object refers to (``{"ref": name}``), at any depth."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, dict):
        if isinstance(node.get("ref"), str):
            yield node["ref"]
        for value in node.values():
            yield from _refs(value, seen)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _refs(value, seen)
    elif hasattr(node, "__dict__"):
        yield from _refs(vars(node), seen)


def unused_parameters(ruleset: Any) -> frozenset[str]:
    """Parameters a ruleset declares and none of its rules reads."""
    declared = set(getattr(ruleset, "parameters", {}) or {})
    return frozenset(declared - set(_refs(getattr(ruleset, "rules", []))))


def _cache_endpoints(client: Any) -> None:
    resolver = getattr(client, "_ruleset_resolver", None)
    ruleset = getattr(getattr(resolver, "_provider", None), "ruleset", None)
    original = getattr(resolver, "_get_provider_params", None)
    if resolver is None or ruleset is None or original is None:
        return
    unused = unused_parameters(ruleset)
    if not unused:
        return

    async def provider_params(*args: Any, **kwargs: Any) -> dict[str, Any]:
        params: dict[str, Any] = await original(*args, **kwargs)
        for name in unused:
            params.pop(name, None)
        return params

    resolver._get_provider_params = provider_params
    log.debug("endpoint rule parameters left out (no rule reads them): %s", sorted(unused))


def _fixed_user_agent(client: Any) -> None:
    creator = getattr(client, "_user_agent_creator", None)
    if creator is None or not callable(getattr(creator, "to_string", None)):
        return
    text = creator.to_string()
    creator.to_string = lambda: text
