"""Shared fixtures live in tests/fixtures/, one module per real part (S3, sandbox, ...)."""

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.s3",
    "tests.fixtures.sandbox",
    "tests.fixtures.prometheus",
]

# Tests assert behaviour, never speed (speed is bench/'s): on a loaded, shared machine a
# property test must not fail for taking long. Per-test @settings still set max_examples.

settings.register_profile("behaviour", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("behaviour")


# Commands run in-process (``cli.main``) call ``setup_logging``, which replaces the root
# logger's handlers and sets levels for the whole process. Each test gets the logging
# configuration it started with back, so no test's outcome depends on which ran before it.


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    for handler in list(root.handlers):  # what the test added, less pytest's own capture
        if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))
