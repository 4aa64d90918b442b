"""Opening a Milvus client (Lite or server) with a deadline: transient "unavailable" errors are
retried with backoff, and after the deadline one clear error names the endpoint.

Why: Milvus Lite starts its server process and its unix socket asynchronously, and pymilvus gives
up at once when the socket is not there yet; a server that is still starting refuses connections
for a while. Neither is a reason to fail, and neither may hang a caller.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import grpc
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from mm_feast.core.errors import OnlineStoreUnavailable

logger = logging.getLogger(__name__)


class _DropIteratorClockNotice(logging.Filter):
    """pymilvus warns on every query_iterator against Milvus Lite that it could not get the
    server's MVCC timestamp and uses the client's; harmless for our full-collection reads."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to get mvccTs" not in record.getMessage()


for _name in ("pymilvus.client.iterator.query_iterator",):
    logging.getLogger(_name).addFilter(_DropIteratorClockNotice())

DEFAULT_CONNECT_TIMEOUT_S = 10.0
_CONNECT_FAILED = 2  # pymilvus Status.CONNECT_FAILED
_TRANSIENT_MESSAGES = ("fail connecting", "unavailable", "connect failed", "open local milvus failed", "server not ready")


@dataclass(frozen=True)
class Endpoint:
    """Where a store lives: a Milvus Lite file (``address`` is its resolved path) or a server URI."""

    kind: Literal["lite", "server"]
    address: str
    db_name: str = ""
    token: str = ""

    def describe(self) -> str:
        return f"Milvus Lite file {self.address}" if self.kind == "lite" else f"Milvus server {self.address}"


ClientFactory = Callable[[Endpoint, float], MilvusClient]


def new_client(endpoint: Endpoint, timeout_s: float) -> MilvusClient:
    """One plain pymilvus connection attempt, waiting at most ``timeout_s`` for the channel."""
    if endpoint.kind == "lite":
        return MilvusClient(endpoint.address, timeout=timeout_s)
    kwargs: dict[str, Any] = {"uri": endpoint.address, "token": endpoint.token, "timeout": timeout_s}
    if endpoint.db_name:
        kwargs["db_name"] = endpoint.db_name
    return MilvusClient(**kwargs)


def is_transient(exc: BaseException) -> bool:
    """Errors that mean "not (yet) reachable", as opposed to a refused request."""
    if isinstance(exc, grpc.RpcError):
        return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    if isinstance(exc, MilvusException):
        return exc.code == _CONNECT_FAILED or any(m in str(exc.message).lower() for m in _TRANSIENT_MESSAGES)
    return isinstance(exc, (ConnectionError, FileNotFoundError, TimeoutError))


def connect(
    endpoint: Endpoint,
    deadline_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    factory: Optional[ClientFactory] = None,
    initial_backoff_s: float = 0.05,
    max_backoff_s: float = 1.0,
) -> MilvusClient:
    """A connected client, retrying transient failures until ``deadline_s`` has passed."""
    make = factory or new_client
    deadline = time.monotonic() + deadline_s
    backoff = initial_backoff_s
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            client = make(endpoint, max(remaining, 0.1))
            if attempts > 1:
                logger.info("connected to %s after %d attempts", endpoint.describe(), attempts)
            return client
        except Exception as exc:
            if not is_transient(exc):
                raise
            last = exc
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            reason = getattr(last, "message", None) or str(last) or type(last).__name__
            raise OnlineStoreUnavailable(
                f"{endpoint.describe()} did not accept a connection within {deadline_s:g} s "
                f"({attempts} attempts; last error: {reason}). Check that it is running, or raise "
                "online_store.connect_timeout_s in feature_store.yaml."
            ) from last
        logger.debug("%s not reachable yet (%s); retrying in %.2f s", endpoint.describe(), last, min(backoff, remaining))
        time.sleep(min(backoff, remaining))
        backoff = min(backoff * 2, max_backoff_s)
