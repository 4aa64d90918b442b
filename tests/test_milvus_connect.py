"""Connecting to Milvus retries transient "unavailable" errors within a deadline, then fails with
one message naming the endpoint; it never hangs (issue: CI flaked on Lite's late socket)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from milvus_lite.server import Server
from pymilvus.exceptions import MilvusException

from milvus_server import free_port
from mm_feast.core.errors import OnlineStoreUnavailable
from mm_feast.plugin.milvus.client import Endpoint, connect, is_transient, new_client


def test_a_socket_that_appears_late_is_waited_for(tmp_path: Path) -> None:
    """A real Milvus Lite server whose unix socket appears 1.5 s after the client starts trying."""
    server = Server(str(tmp_path / "late.db"))
    assert server.init()
    endpoint = Endpoint("server", server.uds_path)
    assert not Path(server.uds_path.removeprefix("unix:")).exists()
    starter = threading.Timer(1.5, server.start)
    attempts: list[float] = []

    def counting(ep: Endpoint, timeout_s: float):
        attempts.append(time.monotonic())
        return new_client(ep, min(timeout_s, 1.0))

    starter.start()
    try:
        client = connect(endpoint, deadline_s=60, factory=counting)
        try:
            assert client.list_collections() == []
        finally:
            client.close()
    finally:
        starter.join()
        server.stop()
    assert len(attempts) > 1, "the first attempts must have failed: the socket did not exist yet"


def test_transient_failures_are_retried_until_one_succeeds(tmp_path: Path) -> None:
    """The fault-injection seam: the first three attempts fail as pymilvus fails on a missing socket."""
    calls = []

    def flaky(ep: Endpoint, timeout_s: float):
        calls.append(timeout_s)
        if len(calls) <= 3:
            raise MilvusException(code=2, message=f"Fail connecting to server on {ep.address}, illegal connection params or server unavailable")
        return "connected"

    assert connect(Endpoint("lite", str(tmp_path / "x.db")), deadline_s=30, factory=flaky, initial_backoff_s=0.01) == "connected"
    assert len(calls) == 4


def test_a_connection_that_never_succeeds_fails_with_the_endpoint_within_the_deadline() -> None:
    port = free_port()  # nothing listens there
    endpoint = Endpoint("server", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(OnlineStoreUnavailable) as caught:
        connect(endpoint, deadline_s=2.0)
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "within 2 s" in message, message
    assert elapsed >= 2.0, "it gave up before its deadline"
    assert elapsed < 30, f"connect overran its 2 s deadline by far ({elapsed:.1f} s): it must never hang"


def test_a_refused_request_is_not_retried() -> None:
    calls = []

    def refused(ep: Endpoint, timeout_s: float):
        calls.append(1)
        raise MilvusException(code=1100, message="invalid parameter: db_name")

    with pytest.raises(MilvusException):
        connect(Endpoint("server", "http://127.0.0.1:1"), deadline_s=30, factory=refused)
    assert calls == [1]
    assert not is_transient(ValueError("bad config"))
