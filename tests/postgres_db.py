"""A real PostgreSQL for the tests: the cluster scripts/test.sh starts (``MM_FEAST_POSTGRES_URL``),
or one started here with infra/postgres.sh (on a free port) when Debian's PostgreSQL is installed. Each test gets a
database of its own, dropped afterwards, so tests never see each other's tables."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import create_engine, make_url, text

ENV_URL = "MM_FEAST_POSTGRES_URL"
SCRIPT = Path(__file__).resolve().parents[1] / "infra" / "postgres.sh"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a running cluster's ``postgres`` database, for the session."""
    external = os.environ.get(ENV_URL)
    if external:
        yield external
        return
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip(f"no PostgreSQL: set {ENV_URL} or install Debian's postgresql (scripts/test.sh does)")
    # not under pytest's tmp dir: that is private to root, and the cluster belongs to `postgres`
    data = Path(tempfile.mkdtemp(prefix="mm-feast-pg-"))
    env = {**os.environ, "PG_PORT": str(_free_port())}
    try:
        subprocess.run(["bash", str(SCRIPT), "start", str(data)], check=True, env=env, timeout=120)
        yield subprocess.run(["bash", str(SCRIPT), "url", str(data)], check=True, env=env, capture_output=True,
                             text=True, timeout=30).stdout.strip()
    finally:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop", str(data)], env=env, timeout=120).returncode == 0
        if stopped:  # never delete a running server's files
            shutil.rmtree(data, ignore_errors=True)


def _free_port() -> int:
    """A loopback port nothing listens on now (a cluster left by a killed run keeps its own)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the cluster; dropped (with any connection left) after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
        from mm_feast.stores.lineage import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
