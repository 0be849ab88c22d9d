"""`aion-ingest` whose ledger merge stops just before its manifest swap, for the SIGKILL
test of a whole run: ``python -m tests.ledger.run_paused_in_merge run SOURCE ...`` prints
``SWAP`` on stdout when the run's merge has written its segment and reaches the swap,
then waits to be killed. Everything else is the real command.
"""

from __future__ import annotations

import asyncio
import sys

from ingest.cli import main
from ingest.ledger import store as ledger_store


async def _swap_then_hang(self: object, *args: object) -> None:
    print("SWAP", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    ledger_store.Ledger._swap = _swap_then_hang  # type: ignore[method-assign,assignment]
    raise SystemExit(main(sys.argv[1:]))
