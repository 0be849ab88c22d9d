"""The S3 edge: the only package that imports aioboto3, aiobotocore and botocore (and the
aiohttp of the lean GET). Sources and the state store reach S3 through it.

- :mod:`.client`: :class:`S3Config` (what callers hand down from their settings) and
  :class:`S3Client`, the one factory (retry policy, timeouts, endpoint, region, addressing
  style, credentials) and every call the project makes;
- :mod:`.errors`: botocore's failures → the project's error tree, one table;
- :mod:`.uris`: ``s3://`` and ``file://`` URIs, parsed one way for everyone;
- :mod:`.lean` and :mod:`.tuning`: the CPU work on GetObject (a hand-signed GET after a
  bucket's first, and two trims of botocore's per-request overhead), with the fallback
  counts by cause.

Import the submodules themselves: this package's ``__init__`` imports nothing, so a local
run that needs only :mod:`.uris` does not load botocore.
"""
