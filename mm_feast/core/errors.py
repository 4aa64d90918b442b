"""One error tree for mm-feast: each error has a stable code, an HTTP and a gRPC status, and says
whether retrying can help. The CLI maps any of them to one line and an exit code, never a traceback.

Subclassing Feast's ``FeastError`` lets Feast's own feature server map them to HTTP statuses too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from feast.errors import FeastError


class MmFeastError(FeastError):
    """Base of every error mm-feast raises on purpose; the message names the file or endpoint and why."""

    code: ClassVar[str] = "mm_feast_error"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[str] = "INTERNAL"
    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1

    def http_status_code(self) -> int:
        return self.http_status

    def grpc_status_code(self) -> Any:
        from grpc import StatusCode

        return getattr(StatusCode, self.grpc_status)


class UserError(MmFeastError):
    """Something the user can fix (a path, a model id, a definition): exit code 2."""

    code = "user_error"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    exit_code = 2


class OnlineStoreUnavailable(MmFeastError):
    """The online store did not answer within its connect deadline."""

    code = "online_store_unavailable"
    http_status = 503
    grpc_status = "UNAVAILABLE"
    retryable = True
    exit_code = 3
