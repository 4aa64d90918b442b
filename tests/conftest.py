"""Shared fixtures: a real Milvus server (external via MM_FEAST_MILVUS_URI, or started here)."""

from milvus_server import milvus_server_uri  # noqa: F401  (pytest fixture)
