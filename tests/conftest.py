"""Shared fixtures live in tests/fixtures/, one module per real part (S3, sandbox, ...)."""

pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.s3",
    "tests.fixtures.sandbox",
    "tests.fixtures.prometheus",
]
