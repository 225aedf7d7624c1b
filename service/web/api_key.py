"""The API key (`DIGITS_API_KEY`): where a request presents it, and whether it is the key.

One check for both transports: HTTP headers (service/middleware/auth.py) and gRPC metadata
(service/grpc/servicer.py) come as the same lower-case (name, value) pairs.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable


def refusal_for(presented: bytes | None, key: bytes) -> str | None:
    """Why a request presenting `presented` is refused, or None if it carries `key`."""
    # Constant-time comparison: the time taken must not tell how much of a guess was right.
    if presented is not None and hmac.compare_digest(presented, key):
        return None
    return "missing API key" if presented is None else "invalid API key"


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key in lower-case `headers` (or gRPC metadata), from either header it may be in."""
    for name, value in headers:
        if name == b"x-api-key":
            return bytes(value.strip())
        if name == b"authorization":
            scheme, _, credentials = bytes(value).strip().partition(b" ")
            if scheme.lower() == b"bearer":
                return credentials.strip()
    return None
