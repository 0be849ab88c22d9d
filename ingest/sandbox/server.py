"""Placeholder: the sandbox server is being built."""

from __future__ import annotations

import argparse

from ingest.errors import ConfigError


def main(args: argparse.Namespace) -> int:
    raise ConfigError("the sandbox is not built yet")
