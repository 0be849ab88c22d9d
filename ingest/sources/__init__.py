"""Sources: where items come from (S3, manifests, local folders). See :mod:`.base`."""
