"""A local Aionvision-compatible Uploads API (demos, tests, benchmarks, staging).

An independent implementation of the contract: nothing here imports ``ingest.api``.
"""
