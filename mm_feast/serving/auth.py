"""The bearer-token check of every front end (HTTP and gRPC): one comparison, in constant time."""

from __future__ import annotations

import hmac


def bearer_ok(authorization: str, token: str) -> bool:
    """True when an ``Authorization`` value is ``Bearer <token>``."""
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())
