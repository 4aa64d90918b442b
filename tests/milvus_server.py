"""A real Milvus server for tests: an external one, or one started from the PyPI package `milvus`.

Order of preference for the ``milvus_server_uri`` fixture:
1. ``MM_FEAST_MILVUS_URI`` (e.g. ``http://127.0.0.1:19530``, as started by
   ``infra/milvus_server.sh start``): used as is, never stopped by the tests.
2. ``milvus-server`` on PATH (Milvus 2.3.5 standalone): started in a temporary data dir with
   its gRPC proxy on a free port, and stopped with SIGINT to the wrapper at session end.
3. Otherwise the tests that need it are skipped.

The server listens on all interfaces; clients here only ever connect to 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

logger = logging.getLogger(__name__)

ENV_URI = "MM_FEAST_MILVUS_URI"
HOST = "127.0.0.1"


def free_port() -> int:
    """A port that was free a moment ago (the wrapper scans upward if it is taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until_ready(uri: str, timeout_s: float = 180.0, proc: Optional[subprocess.Popen] = None) -> None:
    """Poll with pymilvus until the server answers, or raise after ``timeout_s``."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout_s
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"milvus-server exited with code {proc.returncode} before serving {uri}")
        try:
            client = MilvusClient(uri=uri, timeout=5)
            try:
                client.list_collections()
                return
            finally:
                client.close()
        except Exception as e:  # not listening yet, or still starting its components
            last = e
            time.sleep(1.0)
    raise TimeoutError(f"Milvus at {uri} did not answer within {timeout_s:.0f} s: {last}")


@dataclass
class MilvusServerProcess:
    """A ``milvus-server`` wrapper process that we started (and only that one)."""

    uri: str
    data_dir: Path
    proc: subprocess.Popen

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGINT to the wrapper: it terminates the inner milvus and exits cleanly."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # Last resort: the session we created holds only the wrapper and its milvus.
            logger.warning("milvus-server (pid %d) ignored SIGINT; killing its group", self.proc.pid)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_milvus_server(
    data_dir: Path, port: Optional[int] = None, timeout_s: float = 180.0, binary: str = "milvus-server"
) -> MilvusServerProcess:
    """Start ``milvus-server --data DATA_DIR --proxy-port PORT`` and wait until it serves."""
    exe = shutil.which(binary)
    if exe is None:
        raise FileNotFoundError(f"{binary} is not on PATH (pip install milvus==2.3.5)")
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "milvus-server.out", "wb")
    proc = subprocess.Popen(
        [exe, "--data", str(data_dir), "--proxy-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # our own process group, so a stray Ctrl-C doesn't reach it
    )
    log.close()
    server = MilvusServerProcess(uri=f"http://{HOST}:{port}", data_dir=data_dir, proc=proc)
    try:
        wait_until_ready(server.uri, timeout_s, proc)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def milvus_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of a running Milvus server for the session (see the module docstring)."""
    external = os.environ.get(ENV_URI)
    if external:
        wait_until_ready(external, timeout_s=60)
        yield external
        return
    if shutil.which("milvus-server") is None:
        pytest.skip(f"no Milvus server: set {ENV_URI} or install the PyPI package milvus")
    server = start_milvus_server(tmp_path_factory.mktemp("milvus-server"))
    try:
        yield server.uri
    finally:
        server.stop()
