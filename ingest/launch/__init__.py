"""Launching workers: Indexed Job semantics, Kubernetes, local processes."""
