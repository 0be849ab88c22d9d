"""Both state stores (folder, moto S3) for the ledger tests, as in tests/state."""

from tests.state.conftest import folder_store, s3_store, store

__all__ = ["folder_store", "s3_store", "store"]
