"""Security headers on every response, as pure ASGI (outermost, so that the refusals of the
other middlewares — 401, 413, 408/504 — carry them too).

- `X-Content-Type-Options: nosniff`: a browser takes each response as the type it is
  declared (JSON stays JSON), never guessing from its bytes.
- `Content-Security-Policy`: the web page and `/docs` load scripts, styles and images
  from this server only (`data:` images: the page shows the model's 28×28 input and its
  favicon as `data:` URLs), talk to this server only, and may not be framed by any site
  (`frame-ancestors 'none'`, against clickjacking). Neither page has an inline script or
  style, so no `'unsafe-inline'` is needed; every other response, JSON or text, is not a
  document, and the same policy costs it nothing.
- `Referrer-Policy: no-referrer`: links out of the docs do not tell where they came from.

A header a route set itself is kept.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def send_with_headers(message: Message) -> Awaitable[None]:
            # A plain function handing back `send`'s awaitable: no coroutine of its own.
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in SECURITY_HEADERS if header[0] not in present]
                message = {**message, "headers": headers}
            return send(message)

        await self.app(scope, receive, send_with_headers)
