"""A ledger merge that stops just before its manifest swap, for the SIGKILL test.

``python -m tests.ledger.merge_child STATE_DIR NAME RUN_ID WORKDIR`` prints ``SWAP`` when
it reaches the swap, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ingest.ledger import store as ledger_store
from ingest.ledger.merge import merge_run
from ingest.settings import load_settings
from ingest.state import open_state


async def main(state: str, name: str, run_id: str, workdir: str) -> None:
    async def swap_then_hang(self: object, *args: object) -> None:
        print("SWAP", flush=True)
        await asyncio.Event().wait()

    ledger_store.Ledger._swap = swap_then_hang  # type: ignore[method-assign,assignment]
    async with open_state(state, load_settings()) as store:
        await merge_run(store, name, run_id, Path(workdir))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
