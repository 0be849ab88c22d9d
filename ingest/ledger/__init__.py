"""The ledger of a recurring import: what it already sent, so the next run sends only
what is new (issue 11).

Layers: below planning and orchestration (they call it), above the state store.

- :mod:`.entries`   one entry and its segment line; the sort order; ledger names
- :mod:`.store`     :class:`Ledger`: segments + manifest in the state store, CAS, compaction
- :mod:`.view`      the merged newest-wins view of local segment copies
- :mod:`.join`      the anti-join of a listing against the ledger: new / changed / unchanged
- :mod:`.merge`     a finished run's outcomes into the ledger, exactly once
- :mod:`.sorting`   an external sort with bounded memory
"""
