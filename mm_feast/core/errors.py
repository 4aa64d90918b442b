"""One error tree for mm-feast: each error has a stable code, an HTTP and a gRPC status, and says
whether retrying can help. The CLI maps any of them to one line and an exit code, never a traceback.

Subclassing Feast's ``FeastError`` lets Feast's own feature server map them to HTTP statuses too.

    MmFeastError                      exit 1  (500 INTERNAL)
    ├── UserError                     exit 2  (400 INVALID_ARGUMENT): the user can fix it
    │   ├── InvalidArgument           also a ValueError: a bad argument or definition
    │   │   └── (mm_feast.versions.VersionError, mm_feast.quality.suites.SuiteError)
    │   ├── NotFound                  also a KeyError (404 NOT_FOUND): no such view, record, entry
    │   ├── ModelNotFound             (404 NOT_FOUND): a model id that cannot be loaded offline
    │   ├── QueryFileError            a search query file that is missing, unreadable or undecodable
    │   ├── MediaSourceNotFound       also a FileNotFoundError: a media root or manifest is missing
    │   ├── RepoConfigError           no feature_store.yaml, or a path in it that cannot be used
    │   └── QueryBlocked              (422) a search query a content filter blocks
    └── OnlineStoreUnavailable        exit 3  (503 UNAVAILABLE, retryable)
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, ClassVar, Optional

from feast.errors import FeastError


class MmFeastError(FeastError):
    """Base of every error mm-feast raises on purpose; the message names the file or endpoint and why."""

    code: ClassVar[str] = "mm_feast_error"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[str] = "INTERNAL"
    retryable: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1

    def __str__(self) -> str:
        # The message as given, also for the KeyError subclasses (KeyError's own str quotes it).
        if hasattr(self, "__overridden_message__"):
            return str(getattr(self, "__overridden_message__"))
        return str(self.args[0]) if len(self.args) == 1 else Exception.__str__(self)

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


class InvalidArgument(UserError, ValueError):
    """A bad argument, option or definition; still a ``ValueError`` for callers that catch that."""

    code = "invalid_argument"


class NotFound(UserError, KeyError):
    """A named thing (view, lineage record, quarantine entry) that does not exist; still a ``KeyError``."""

    code = "not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class ModelNotFound(UserError):
    """A model id that is neither a local ``save_pretrained`` directory, a bundled model, nor cached."""

    code = "model_not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"

    def __init__(self, message: str, model_id: str = ""):
        super().__init__(message)
        self.model_id = model_id

    def __reduce__(self) -> Any:
        return (type(self), (str(self), self.model_id))


class QueryFileError(UserError):
    """A search query that names a file which is missing, unreadable or cannot be decoded."""

    code = "query_file_error"

    def __init__(self, path: str, reason: str):
        super().__init__(f"query file {path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> Any:
        return (type(self), (self.path, self.reason))


class MediaSourceNotFound(UserError, FileNotFoundError):
    """A media collection's root directory or manifest that does not exist; still a ``FileNotFoundError``."""

    code = "media_source_not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"


class RepoConfigError(UserError):
    """The repo is not a Feast repo (no feature_store.yaml), or a path its config names is unusable."""

    code = "repo_config_error"


class QueryBlocked(UserError):
    """A search query that a content filter blocks (mm_feast.governance): it is never encoded."""

    code = "query_blocked"
    http_status = 422
    grpc_status = "FAILED_PRECONDITION"


class OnlineStoreUnavailable(MmFeastError):
    """The online store did not answer within its connect deadline."""

    code = "online_store_unavailable"
    http_status = 503
    grpc_status = "UNAVAILABLE"
    retryable = True
    exit_code = 3


def one_line(message: object, limit: int = 2000) -> str:
    """``message`` on one line (inner line breaks and runs of blanks collapse to one space)."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", str(message)).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def user_error_exit_code(exc: BaseException) -> Optional[int]:
    """The exit code for an error the user can act on, or None for an unexpected one (a bug).

    Every ``MmFeastError`` has its own; Feast's own errors (an unknown feature view, an invalid
    ``feature_store.yaml``) are user errors too and exit 2.
    """
    if isinstance(exc, MmFeastError):
        return exc.exit_code
    if isinstance(exc, FeastError):
        return 2
    return None


def user_error_in(exc: Optional[BaseException]) -> Optional["MmFeastError"]:
    """The mm-feast error an exception is or was raised from (Feast and importlib wrap them)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def install_feast_cli_hook() -> None:
    """In the ``feast`` CLI, show an mm-feast user error as one line instead of a traceback.

    Feast imports a repo's definitions and runs its stores without catching errors, so a model id
    that cannot be loaded in ``feast apply`` ended in a traceback. Other exceptions keep theirs, and
    ``MM_FEAST_DEBUG=1`` keeps every traceback."""
    if os.environ.get("MM_FEAST_DEBUG") or getattr(sys.excepthook, "mm_feast", False):
        return
    previous = sys.excepthook

    def hook(exc_type: type, exc: BaseException, tb: Any) -> None:
        error = user_error_in(exc)
        if error is None:
            previous(exc_type, exc, tb)
            return
        sys.stdout.flush()
        message = " ".join(str(error).split())
        sys.stderr.write(f"feast: error: {message}\n(raised by mm-feast; set MM_FEAST_DEBUG=1 for the traceback)\n")

    hook.mm_feast = True  # type: ignore[attr-defined]
    sys.excepthook = hook
