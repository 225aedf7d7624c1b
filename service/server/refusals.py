"""What the HTTP protocol layer (protocol.py) answers when it refuses a request, before any
route runs: the bytes of the response, and the words for what uvicorn leaves unexplained.

Every refusal is JSON, shaped by `service/web/errors.py` as the request's path's operation
would shape it, says `Connection: close`, and is counted in /metrics like any response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.gateway.table import TABLE
from service.server.uvicorn_internals import STATUS_LINE
from service.web.errors import error_response_for
from service.web.operation import record, route_path

MISSING_HOST = "An HTTP/1.1 request needs a Host header (RFC 9112, section 3.2)."


def refusal(
    url: bytes,
    root_path: str,
    default_headers: Iterable[tuple[bytes, bytes]],
    status: int,
    code: str,
    message: str,
) -> bytes:
    """The whole response, shaped by the path in `url` (the request line's target, or b""
    if it never arrived: then as `/v1`)."""
    path = url.split(b"?", 1)[0].decode("latin-1")
    scope: dict[str, Any] = {"type": "http", "path": path, "root_path": root_path}
    operation, rules, _ = TABLE.match("GET", route_path(scope))
    record(scope, operation, rules)
    response = error_response_for(scope, status, code, message)
    content = [STATUS_LINE[status]]
    for name, value in [*default_headers, *response.raw_headers]:
        content += [name, b": ", value, b"\r\n"]
    content += [b"connection: close\r\n\r\n", bytes(response.body)]
    return b"".join(content)


def framing_problem(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Why a request whose head was read has no body the parser can read, if its headers
    say: a Transfer-Encoding whose last coding is not chunked (RFC 9112, section 6.3: its
    length cannot be known, so 400 and close). uvicorn says "Invalid HTTP request received."
    for every parser error alike."""
    codings = b",".join(value for name, value in headers if name == b"transfer-encoding")
    if not codings or codings.rsplit(b",", 1)[-1].strip().lower() == b"chunked":
        return None
    coding = codings.decode("latin-1")
    return f"Transfer-Encoding {coding!r} is not supported: the body must be chunked, last."
