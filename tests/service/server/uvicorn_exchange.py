"""One request, then malformed HTTP, through uvicorn's own HTTP protocol, made and driven the
way uvicorn's server does: for the private-API tests (test_private_apis.py,
test_private_api_list.py), which check on it what protocol.py and coalescing.py rely on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pytest
import uvicorn

UVICORN = f"uvicorn {version('uvicorn')}"  # how failures name the uvicorn installed
try:
    from service.server import uvicorn_internals as internals
except ImportError as error:  # a name it imports from uvicorn is gone
    pytest.fail(f"{UVICORN}: {error}; service/server/uvicorn_internals.py imports it", False)

__all__ = ["UVICORN", "Exchange", "exchange", "internals"]

REQUEST = b"GET /path?q=1 HTTP/1.1\r\nHost: test\r\n\r\n"
MALFORMED = b"\x01 not HTTP\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """A connection's transport that records what is written to it and, when given the
    cycle that writes, that cycle's `response_started` at each write."""

    def __init__(self, cycle: Any = None) -> None:
        super().__init__({"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)})
        self.cycle = cycle
        self.writes: list[tuple[bytes, object]] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append((bytes(data), getattr(self.cycle, "response_started", None)))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False


@dataclass
class Exchange:
    protocol: Any  # the HttpToolsProtocol, as left once both were answered
    calls: list[str]  # of the methods protocol.py overrides, in order
    url: object  # `protocol.url` once the request's head was parsed
    cycle: object  # `protocol.cycle` then
    cycle_transport: object  # the transport it was made with
    # Through `cycle.transport`, replaced as protocol.py does: (bytes, `response_started`).
    cycle_writes: list[tuple[bytes, object]]


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


def _noting(calls: list[str]) -> type[Any]:
    """HttpToolsProtocol, noting in `calls` each call of a method protocol.py overrides."""

    def noted(name: str) -> Callable[..., Any]:
        def method(self: Any, *args: Any) -> Any:
            calls.append(name)
            return getattr(internals.HttpToolsProtocol, name)(self, *args)

        return method

    overridden = [item.name for item in internals.OVERRIDDEN]
    methods = {
        name: noted(name) for name in overridden if hasattr(internals.HttpToolsProtocol, name)
    }
    return type("NotingHttpToolsProtocol", (internals.HttpToolsProtocol,), methods)


async def _exchange() -> Exchange:
    config = uvicorn.Config(_app, http="httptools", lifespan="off", log_config=None)
    state = uvicorn.Server(config).server_state
    calls: list[str] = []
    protocol = _noting(calls)(
        config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop()
    )
    protocol.connection_made(RecordingTransport())
    protocol.data_received(REQUEST)
    cycle = getattr(protocol, "cycle", None)
    cycle_transport = getattr(cycle, "transport", None)
    recorder = RecordingTransport(cycle)
    if cycle is not None:
        cycle.transport = recorder  # before the cycle's task runs, as protocol.py does
    await asyncio.wait_for(asyncio.gather(*state.tasks), timeout=10)  # the request's app
    url = getattr(protocol, "url", None)
    protocol.data_received(MALFORMED)
    return Exchange(protocol, calls, url, cycle, cycle_transport, recorder.writes)


def exchange() -> Exchange:
    return asyncio.run(_exchange())
