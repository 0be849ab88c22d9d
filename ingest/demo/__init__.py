"""`make demo`: the main job on embedded local servers (moto's S3 and the sandbox)."""
