"""The HTTP measurements: single images at several concurrencies, then batch scoring.

Runs are interleaved (round-robin over the servers, `rounds` times, medians reported)
so that a noisy neighbour hurts every contender alike. All servers are started first,
one after another, so that each one's start-up is timed alone.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
from collections.abc import Iterator

from bench.contenders import Contender, started
from bench.loadgen import LoadResult, post_request, run_load
from bench.servers import HOST, Server

CONCURRENCY = (1, 8, 64)


def measure_http(
    contenders: list[Contender],
    pngs: list[bytes],
    *,
    rounds: int,
    requests: dict[int, int],
    batch_requests: int,
    time_limit: float,
) -> dict[str, dict[str, object]]:
    """Per contender: ready time, RSS, and the median of each scenario over the rounds."""
    out: dict[str, dict[str, object]] = {}
    with contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for contender in contenders:
            print(f"starting {contender.name}", flush=True)
            server = servers[contender.name] = stack.enter_context(started(contender))
            out[contender.name] = {
                "ready_seconds": server.ready_seconds,
                "rss_idle_mb": server.notes["rss_idle_mb"],
                "rss_idle_largest_mb": server.notes["rss_idle_largest_mb"],
                "processes": server.notes["processes"],
            }
        single: dict[str, dict[int, list[LoadResult]]] = {c.name: {} for c in contenders}
        batch: dict[str, dict[int, list[LoadResult]]] = {c.name: {} for c in contenders}
        peak_rss: dict[str, float] = {c.name: 0.0 for c in contenders}
        for round_ in range(rounds):
            print(f"HTTP round {round_ + 1}/{rounds}", flush=True)
            for contender in contenders:
                server = servers[contender.name]
                payloads = [
                    post_request(HOST, server.port, contender.path, contender.body([png]))
                    for png in pngs
                ]
                for concurrency in CONCURRENCY:
                    with _peak_memory(server) as peak:
                        result = run_load(
                            HOST,
                            server.port,
                            payloads,
                            concurrency=concurrency,
                            requests=requests[concurrency],
                            time_limit=time_limit,
                        )
                    peak_rss[contender.name] = max(peak_rss[contender.name], peak[0])
                    single[contender.name].setdefault(concurrency, []).append(result)
                for size in contender.batch_sizes:
                    body = contender.body(pngs[:size])
                    result = run_load(
                        HOST,
                        server.port,
                        [post_request(HOST, server.port, contender.path, body)],
                        concurrency=1,
                        requests=batch_requests,
                        time_limit=time_limit,
                        warmup=1,
                    )
                    batch[contender.name].setdefault(size, []).append(result)
        for name in out:
            out[name]["rss_load_mb"] = peak_rss[name]
            out[name]["single"] = {str(c): median_summary(r) for c, r in single[name].items()}
            out[name]["batch"] = {
                str(size): {
                    **median_summary(r),
                    "images_per_s": round(_med(r, "throughput") * size, 1),
                }
                for size, r in batch[name].items()
            }
    return out


@contextlib.contextmanager
def _peak_memory(server: Server) -> Iterator[list[float]]:
    peak = [server.rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            peak[0] = max(peak[0], server.rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def _med(results: list[LoadResult], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in results))


def median_summary(results: list[LoadResult]) -> dict[str, object]:
    """One scenario over the rounds: the median of each figure, the counts summed."""
    keys = ("throughput", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "client_cpu")
    summary: dict[str, object] = {key: round(_med(results, key), 3) for key in keys}
    summary["requests"] = sum(r.requests for r in results)
    summary["errors"] = sum(r.errors for r in results)
    summary["runs"] = len(results)
    errors = [r.first_error for r in results if r.first_error]
    if errors:
        summary["first_error"] = errors[0]
    return summary
