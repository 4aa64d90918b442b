"""Shared fixtures: a real Milvus server (external via MM_FEAST_MILVUS_URI, or started here), a real
PostgreSQL (MM_FEAST_POSTGRES_URL, or started here), and
no Milvus Lite server or client outliving the test that opened it."""

import pytest

from milvus_server import milvus_server_uri  # noqa: F401  (pytest fixture)
from postgres_db import postgres_admin_url, postgres_url  # noqa: F401  (pytest fixtures)


@pytest.fixture(autouse=True)
def _close_milvus_after_each_test():
    """Milvus Lite lets one process open a file: a server left running by one test would hold the
    file lock against the next test's CLI subprocess, and a stale client would outlive its file."""
    yield
    from mm_feast.plugin.milvus.store import close_connections

    close_connections()
