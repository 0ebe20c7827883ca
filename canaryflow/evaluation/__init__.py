"""Replaying requests against configuration versions: shadow replay and ``canaryflow eval``."""
