"""aion-ingest: bulk ingestion of S3 objects into the Aionvision Uploads API."""

__version__ = "0.1.0"
