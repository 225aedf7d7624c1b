"""Soak test: a long, bounded run against the real server, for errors, tail latency and leaks.

    python -m bench.soak                       # 100,000 requests, 32 concurrent
    python -m bench.soak --requests 2000       # the CI-sized run (tests/bench/test_soak.py)

Starts `python -m service` on a loopback port (as deployed: its default workers), then
drives it with a mix of realistic uploads, batches, bad inputs (which must get their
4xx) and readiness checks from an async httpx client, until `--requests` are done or
`--time-limit` passes. An error is a transport failure or any status other than the one
that request must get. Reports p50/p99 latency and the server's RSS (all its processes)
after warm-up and at the end; writes `<out>/<name>.json` and `.md`. Exit status 0 only
with no errors, every request done, and RSS growth within `--max-rss-growth`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python bench/soak.py` as well as `-m bench.soak`
    sys.path.insert(0, str(REPO_ROOT))

from bench.servers import free_port  # noqa: E402
from samples.uploads import load_test_digits, make_upload  # noqa: E402


@dataclass(frozen=True)
class Request:
    kind: str
    method: str
    path: str
    body: bytes | None
    expected: int


@dataclass
class Report:
    requested: int
    completed: int
    errors: int
    concurrency: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_start_mib: float
    rss_end_mib: float
    rss_growth: float
    statuses: dict[str, int]
    kinds: dict[str, int]
    time_limited: bool
    first_errors: list[str]
    rss_samples_mib: list[float] = field(default_factory=list)
    machine: dict[str, object] = field(default_factory=dict)


def request_mix(seed: int = 0) -> list[Request]:
    """One cycle of the traffic: 20 requests, each kind in its share."""
    images, _ = load_test_digits(64)
    rng = np.random.default_rng(seed)

    def predict(kind: str, uploads: list[bytes], expected: int = 200) -> Request:
        data = [{"data": base64.b64encode(upload).decode()} for upload in uploads]
        body = json.dumps({"images": data}).encode()
        return Request(kind, "POST", "/v1/predict", body, expected)

    def upload(style: str, index: int) -> bytes:
        return make_upload(images[index % len(images)], style, rng)

    mix = [predict("mnist_png", [upload("mnist_png", i)]) for i in range(10)]
    mix += [predict("paper_jpeg", [upload("paper_jpeg", i)]) for i in range(3)]
    mix += [predict("canvas_png", [upload("canvas_png", i)]) for i in range(2)]
    styles = ("mnist_png", "paper_jpeg", "canvas_png", "canvas_png_light")
    mix.append(predict("batch_8", [upload(styles[i % 4], i) for i in range(8)]))
    bad_base64 = json.dumps({"images": [{"data": "not base64!"}]}).encode()
    mix.append(Request("bad_base64", "POST", "/v1/predict", bad_base64, 422))
    mix.append(predict("not_an_image", [b"GIF89a but not really an image"], expected=422))
    mix.append(Request("bad_json", "POST", "/v1/predict", b'{"images": [', 422))
    mix.append(Request("readyz", "GET", "/readyz", None, 200))
    return mix


@contextmanager
def running_server(workers: int | None) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITS_")}
    env.update(DIGITS_HOST="127.0.0.1", DIGITS_PORT=str(port), DIGITS_ACCESS_LOG="false")
    env.update(DIGITS_LOG_LEVEL="warning", DIGITS_DRAIN_SECONDS="0")
    if workers is not None:
        env["DIGITS_WORKERS"] = str(workers)
    server = subprocess.Popen([sys.executable, "-m", "service"], cwd=REPO_ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield server, url
    finally:
        server.terminate()
        server.wait(timeout=60)


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its children (the forked workers), in MiB."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(entry.name))
    total_kib = 0
    for member in pids:
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total_kib += next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line)
    return total_kib / 1024


async def drive(
    url: str, server_pid: int, total: int, concurrency: int, time_limit: float, warmup: int
) -> Report:
    mix = request_mix()
    latencies = np.zeros(total, dtype=np.float64)
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    first_errors: list[str] = []
    errors = completed = 0
    issued = 0
    rss_samples: list[float] = []
    rss_start = 0.0
    warm = asyncio.Event()
    started = time.perf_counter()
    deadline = started + time_limit
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal issued, completed, errors
            while issued < total and time.perf_counter() < deadline:
                index = issued
                issued += 1
                request = mix[index % len(mix)]
                headers = {"content-type": "application/json"} if request.body else None
                begin = time.perf_counter()
                try:
                    response = await client.request(
                        request.method, request.path, content=request.body, headers=headers
                    )
                    outcome = str(response.status_code)
                    ok = response.status_code == request.expected
                except httpx.HTTPError as error:
                    outcome, ok = type(error).__name__, False
                latencies[index] = time.perf_counter() - begin
                completed += 1
                statuses[outcome] += 1
                kinds[request.kind] += 1
                if not ok:
                    errors += 1
                    if len(first_errors) < 5:
                        first_errors.append(f"{request.kind}: got {outcome}")
                if completed == warmup:
                    warm.set()

        async def sample_rss() -> None:
            nonlocal rss_start
            await warm.wait()
            rss_start = rss_mib(server_pid)
            while True:
                rss_samples.append(round(rss_mib(server_pid), 1))
                await asyncio.sleep(5)

        sampler = asyncio.create_task(sample_rss())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        sampler.cancel()
    rss_end = rss_mib(server_pid)
    done = latencies[latencies > 0] * 1000
    return Report(
        requested=total,
        completed=completed,
        errors=errors,
        concurrency=concurrency,
        seconds=round(seconds, 2),
        throughput=round(completed / seconds, 1),
        p50_ms=round(float(np.percentile(done, 50)), 2),
        p99_ms=round(float(np.percentile(done, 99)), 2),
        max_ms=round(float(done.max()), 2),
        rss_start_mib=round(rss_start, 1),
        rss_end_mib=round(rss_end, 1),
        rss_growth=round((rss_end - rss_start) / rss_start, 4) if rss_start else 0.0,
        statuses=dict(statuses),
        kinds=dict(kinds),
        time_limited=completed < total,
        first_errors=first_errors,
        rss_samples_mib=rss_samples,
    )


def markdown(report: Report, command: str) -> str:
    machine = report.machine
    lines = [
        "# Soak test",
        "",
        f"`{command}` — {machine.get('date')}, {machine.get('cpus')} cores "
        f"(load average {machine.get('loadavg_start')} at start; the machine is shared, so "
        "latencies are noisy).",
        "",
        "| requests | errors | concurrency | seconds | req/s | p50 ms | p99 ms | max ms "
        "| RSS start MiB | RSS end MiB | RSS growth |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {report.completed:,} / {report.requested:,} | {report.errors} | "
        f"{report.concurrency} | {report.seconds} | {report.throughput} | {report.p50_ms} | "
        f"{report.p99_ms} | {report.max_ms} | {report.rss_start_mib} | {report.rss_end_mib} | "
        f"{report.rss_growth:+.1%} |",
        "",
        "Statuses: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(report.statuses.items())),
        "",
        "Request kinds: " + ", ".join(f"{k}: {v:,}" for k, v in sorted(report.kinds.items())),
        "",
        "RSS after warm-up, every 5 s (MiB): " + ", ".join(map(str, report.rss_samples_mib)),
    ]
    if report.first_errors:
        lines += ["", "First errors: " + "; ".join(report.first_errors)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds (hard stop)")
    parser.add_argument("--workers", type=int, help="DIGITS_WORKERS (default: the server's)")
    parser.add_argument("--max-rss-growth", type=float, default=0.10)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--name", default="soak", help="file name stem of the results")
    args = parser.parse_args(argv)

    warmup = min(max(500, args.requests // 50), args.requests // 2)
    load_start = os.getloadavg()
    with running_server(args.workers) as (server, url):
        report = asyncio.run(
            drive(url, server.pid, args.requests, args.concurrency, args.time_limit, warmup)
        )
    report.machine = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "workers": args.workers if args.workers is not None else "default",
    }
    command = "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(markdown(report, command.strip()))
    print(markdown(report, command.strip()))
    healthy = report.errors == 0 and not report.time_limited
    return 0 if healthy and report.rss_growth <= args.max_rss_growth else 1


if __name__ == "__main__":
    sys.exit(main())
