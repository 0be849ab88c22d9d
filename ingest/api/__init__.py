"""The Aionvision Uploads API client. Only this package imports httpx and aiohttp.

``AionClient`` (one method per endpoint), ``FileSpec`` (a file to upload, re-openable for
retries), the response models, and ``RetryPolicy``.
"""

from ingest.api.client import AionClient
from ingest.api.errors import attempts_of
from ingest.api.files import FileSpec, SizeMismatch
from ingest.api.retry import RetryPolicy

__all__ = ["AionClient", "FileSpec", "RetryPolicy", "SizeMismatch", "attempts_of"]
