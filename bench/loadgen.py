"""A bounded HTTP/1.1 load generator for loopback servers: our own, on asyncio (+ uvloop).

Why not httpx: at a few thousand requests/s its per-request Python overhead (~300 µs)
would make the client, not the server, the bottleneck on a 2-core machine. This client
keeps `concurrency` keep-alive connections, each sending pre-encoded request bytes one
after another (closed loop), and parses only the status line and Content-Length (or
chunked framing). It stops after `requests` responses or `time_limit` seconds, whichever
comes first, and reports its own CPU use, since it shares the cores with the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

try:  # uvloop ships with uvicorn[standard]; plain asyncio works, only slower
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]

# A warmed-up connection left idle longer than this before the clock starts is replaced:
# servers close idle connections after as little as 5 s (uvicorn's default keep-alive).
IDLE_RECONNECT_SECONDS = 1.0


@dataclass(frozen=True)
class LoadResult:
    """One load run: what was sent, what came back, how fast, and what it cost the client."""

    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput: float  # successful responses per second
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    client_cpu: float  # client CPU seconds / wall seconds (1.0 = one core busy)
    first_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def post_request(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The raw bytes of a keep-alive POST: JSON by default; any other body (binary tensor
    data, say) with its `content_type` and `headers` added to the request's."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"{extra}Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = -1
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(max(length, 0))
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return status, b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _run(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    concurrency: int,
    total: int,
    time_limit: float,
    warmup: int,
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    first_error: list[str] = []
    issued = ready = 0
    deadline = 0.0

    async def connection(warm: int) -> None:
        nonlocal issued, errors, ready
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in range(warm):  # warm-up requests are not counted
                writer.write(payloads[i % len(payloads)])
                await _read_response(reader)
            ready += 1
            idle_from = time.perf_counter()
            await start.wait()
            if time.perf_counter() - idle_from > IDLE_RECONNECT_SECONDS:
                # Warm, but idle while slower connections warmed up: a server may be closing
                # it (keep-alive timeout) as the first request goes out. A fresh one instead.
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
            while issued < total and time.perf_counter() < deadline:
                payload = payloads[issued % len(payloads)]
                issued += 1
                began = time.perf_counter()
                writer.write(payload)
                status, body = await _read_response(reader)
                latencies.append(time.perf_counter() - began)
                if status != 200:
                    errors += 1
                    if not first_error:
                        first_error.append(f"HTTP {status}: {body[:200]!r}")
        except (OSError, asyncio.IncompleteReadError, ValueError) as error:
            errors += 1
            if not first_error:
                first_error.append(f"{type(error).__name__}: {error}")
        finally:
            writer.close()

    start = asyncio.Event()
    tasks = [asyncio.create_task(connection(warmup)) for _ in range(concurrency)]
    # Let every connection open and warm up before the clock starts (bounded wait).
    warm_deadline = time.perf_counter() + 10.0
    while ready + sum(t.done() for t in tasks) < concurrency:
        if time.perf_counter() > warm_deadline:
            break
        await asyncio.sleep(0.005)
    cpu_before = time.process_time()
    began = time.perf_counter()
    deadline = began + time_limit
    start.set()
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    return _summarize(concurrency, latencies, errors, seconds, cpu, first_error)


def _summarize(
    concurrency: int,
    latencies: list[float],
    errors: int,
    seconds: float,
    cpu: float,
    first_error: list[str],
) -> LoadResult:
    ok = len(latencies) - errors
    values = np.array(latencies or [float("nan")]) * 1000
    p50, p90, p99 = (float(np.percentile(values, q)) for q in (50, 90, 99))
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=round(seconds, 3),
        throughput=round(ok / seconds, 1) if seconds > 0 else 0.0,
        p50_ms=round(p50, 3),
        p90_ms=round(p90, 3),
        p99_ms=round(p99, 3),
        mean_ms=round(float(values.mean()), 3),
        client_cpu=round(cpu / seconds, 2) if seconds > 0 else 0.0,
        first_error=first_error[0] if first_error else None,
    )


def run_load(
    host: str,
    port: int,
    payloads: Sequence[bytes],
    *,
    concurrency: int,
    requests: int,
    time_limit: float,
    warmup: int = 2,
) -> LoadResult:
    """Closed-loop load: `concurrency` connections, at most `requests` or `time_limit` s."""
    coroutine = _run(host, port, payloads, concurrency, requests, time_limit, warmup)
    if uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)
