"""`python -m ingest` is the same as the `aion-ingest` command."""

from ingest.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
