"""The commands people type: ``plan``, ``run``, ``resume``, ``status``, ``report``,
``coordinate``. Each wires settings, the state store and the orchestration together and
returns an exit code; :mod:`ingest.cli` parses argv and picks one."""
