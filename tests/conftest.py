"""Shared fixtures live in tests/fixtures/, one module per real part (S3, sandbox, ...)."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.s3",
    "tests.fixtures.sandbox",
    "tests.fixtures.prometheus",
]

# Tests assert behaviour, never speed (speed is bench/'s): on a loaded, shared machine a
# property test must not fail for taking long. Per-test @settings still set max_examples.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("behaviour", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("behaviour")
