"""HEAD works wherever GET does, as pure ASGI.

Load balancers and Kubernetes probes sometimes ask with HEAD; FastAPI routes answer only
the methods they declare, so `HEAD /healthz` was a 405. Declaring HEAD on each route
would also put it in the OpenAPI document, twice per path. Instead, one rule for every
route, including those added later: a HEAD request is routed as GET and answered with
that response's status and headers (Content-Length included), without its body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        # A copy: the server and the outer middlewares (metrics, access log) must still see
        # HEAD. What routing adds to it (the matched route, which metrics label by) is
        # copied back, before the response goes out.
        inner = {**scope, "method": "GET"}

        def copy_back() -> None:
            scope.update({key: value for key, value in inner.items() if key not in scope})

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                copy_back()
            elif message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(inner, receive, send_headers_only)
        finally:
            copy_back()
