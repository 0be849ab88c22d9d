"""The state store: everything a run knows lives under one URI (S3 prefix or folder)."""
