"""`digits-score PATH... --url URL`: score image files in batches against a running service.

A client, not part of the server: it needs only httpx and tqdm (the `client` extra) and
imports neither TensorFlow nor numpy nor the server's modules, so it installs anywhere.
Each batch goes to `/v1/predict`; 503s (model loading, draining), gateway errors and
connection failures are retried with exponential backoff; an image the server rejects
is reported on its own and the rest of its batch is sent again without it. A batch over
the server's images-per-request limit is split to that limit, learnt from the 422.
"""

from __future__ import annotations

import argparse
import base64
import csv
import glob
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from tqdm import tqdm

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
COLUMNS = ("path", "digit", "confidence", "error")
# How /v1/predict says a batch is over DIGITS_MAX_IMAGES. Its code, `invalid_request`, is
# shared with other rules, and `GET /v1/model` does not publish the limit: the message is
# the only place the number is.
TOO_MANY_IMAGES = re.compile(r"at most (\d+) images per request")


@dataclass(frozen=True)
class Result:
    path: str
    digit: int | None = None
    confidence: float | None = None
    error: str | None = None


class RequestFailedError(Exception):
    """The server could not be reached, or kept answering 'try again', through every retry."""


class Scorer:
    """Scores batches of files; safe to call from many threads (one shared connection pool)."""

    def __init__(self, url: str, *, timeout: float, retries: int, backoff: float) -> None:
        self.endpoint = url.rstrip("/") + "/v1/predict"
        self.retries = retries
        self.backoff = backoff
        self.client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=64))
        self.max_images: int | None = None  # the server's limit, once a 422 told us
        self._limit_lock = threading.Lock()

    def score(self, paths: list[Path]) -> list[Result]:
        results: dict[int, Result] = {}
        items: list[tuple[int, str]] = []
        for position, path in enumerate(paths):
            try:
                items.append((position, base64.b64encode(path.read_bytes()).decode("ascii")))
            except OSError as error:
                results[position] = Result(str(path), error=f"cannot read: {error.strerror}")
        try:
            for position, result in self._score_items(items):
                results[position] = Result(str(paths[position]), *result)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            # Not what a digits service answers (a proxy's page, another service...).
            problem = f"unexpected response: {type(error).__name__}: {error}"
            for position, _ in items:
                results.setdefault(position, Result(str(paths[position]), error=problem))
        return [results[position] for position in range(len(paths))]

    def _score_items(
        self, items: list[tuple[int, str]]
    ) -> Iterator[tuple[int, tuple[int | None, float | None, str | None]]]:
        while items:
            limit = self.max_images
            if limit is not None and len(items) > limit:
                for start in range(0, len(items), limit):
                    yield from self._score_items(items[start : start + limit])
                return
            payload = {"images": [{"data": data} for _, data in items], "top_k": 1}
            try:
                response = self._post(payload)
            except RequestFailedError as error:
                yield from ((position, (None, None, str(error))) for position, _ in items)
                return
            if response.status_code == 200:
                predictions = response.json()["predictions"]
                for (position, _), prediction in zip(items, predictions, strict=True):
                    yield position, (prediction["digit"], prediction["confidence"], None)
                return
            message, index = _error_of(response)
            if response.status_code == 422 and index is not None and 0 <= index < len(items):
                # One bad image: report it, send the others again.
                yield items.pop(index)[0], (None, None, message)
            elif response.status_code == 422 and self._learn_limit(message, len(items)):
                continue  # the loop's first step now splits the batch
            elif response.status_code == 413 and len(items) > 1:
                half = len(items) // 2  # a body over the limit: halve the batch until it fits
                yield from self._score_items(items[:half])
                yield from self._score_items(items[half:])
                return
            else:
                yield from ((position, (None, None, message)) for position, _ in items)
                return

    def _learn_limit(self, message: str, sent: int) -> bool:
        """Whether `message` says the server takes fewer than `sent` images per request;
        if so, remember its limit (for every thread's batches) and say so once."""
        match = TOO_MANY_IMAGES.search(message)
        if match is None or not 1 <= int(match[1]) < sent:
            return False  # not that error, or a limit that would not help: report as is
        limit = int(match[1])
        with self._limit_lock:
            if self.max_images is not None and self.max_images <= limit:
                return True  # another thread learnt it first (and said so)
            self.max_images = limit
        # tqdm.write: printed above any progress bar, not through it.
        tqdm.write(
            f"digits-score: the server takes at most {limit} images per request; "
            f"sending batches of {limit}",
            file=sys.stderr,
        )
        return True

    def _post(self, payload: dict[str, Any]) -> httpx.Response:
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            try:
                response = self.client.post(self.endpoint, json=payload)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            problem = f"HTTP {response.status_code}: {_error_of(response)[0]}"
        raise RequestFailedError(f"gave up after {self.retries + 1} attempts; last: {problem}")


def _error_of(response: httpx.Response) -> tuple[str, int | None]:
    """The server's message and the offending image's index, from any error body."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}", None
    if isinstance(error, dict):
        index = error.get("index")
        return str(error.get("message")), index if isinstance(index, int) else None
    return str(error), None


def collect(patterns: list[str]) -> tuple[list[Path], list[str]]:
    """Files from paths, folders (recursively: image files only) and glob patterns, each
    once, in order; and the patterns that matched nothing."""
    files: dict[Path, None] = {}
    unmatched = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            files.update(dict.fromkeys(p for p in found if p.is_file()))
        elif path.is_file():
            files[path] = None  # named explicitly: scored whatever its suffix
        elif any(char in pattern for char in "*?["):
            # glob.glob, not Path.glob: patterns may be absolute (/data/**/*.png).
            matches = [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]  # noqa: PTH207
            files.update(dict.fromkeys(p for p in matches if p.is_file()))
            if not any(p.is_file() for p in matches):
                unmatched.append(pattern)
        else:
            unmatched.append(pattern)
    return list(files), unmatched


class Writer:
    def __init__(self, stream: IO[str], output_format: str) -> None:
        self.stream = stream
        self.csv = csv.writer(stream, lineterminator="\n") if output_format == "csv" else None
        if self.csv is not None:
            self.csv.writerow(COLUMNS)

    def write(self, results: list[Result]) -> None:
        for result in results:
            if self.csv is not None:
                confidence = "" if result.confidence is None else f"{result.confidence:.6f}"
                digit = "" if result.digit is None else result.digit
                self.csv.writerow([result.path, digit, confidence, result.error or ""])
            else:
                self.stream.write(json.dumps(asdict(result)) + "\n")
        self.stream.flush()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digits-score",
        description="Recognize the digits in image files with a running digits service. "
        "Writes path,digit,confidence,error per file (error empty when scored).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or glob pattern")
    parser.add_argument("--url", default="http://localhost:8000", help="the service's base URL")
    parser.add_argument("--batch-size", type=int, default=32, help="images per request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv", dest="fmt")
    parser.add_argument("--retries", type=int, default=5, help="per request (503, no connection)")
    parser.add_argument("--backoff", type=float, default=0.5, help="first retry delay, seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    for name in ("batch_size", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.retries < 0 or args.backoff < 0 or args.timeout <= 0:
        parser.error("--retries and --backoff must be ≥ 0, --timeout > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    files, unmatched = collect(args.paths)
    for pattern in unmatched:
        print(f"digits-score: error: no such file, or nothing matches: {pattern}", file=sys.stderr)
    if not files:
        print("digits-score: error: no image files to score", file=sys.stderr)
        return 2
    stream = args.output.open("w", newline="") if args.output else sys.stdout
    try:
        errors = _run(args, files, Writer(stream, args.fmt)) + len(unmatched)
    except KeyboardInterrupt:
        print("digits-score: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.output:
            stream.close()
    return 1 if errors else 0


def _run(args: argparse.Namespace, files: list[Path], writer: Writer) -> int:
    scorer = Scorer(args.url, timeout=args.timeout, retries=args.retries, backoff=args.backoff)
    batches = [files[i : i + args.batch_size] for i in range(0, len(files), args.batch_size)]
    progress = tqdm(total=len(files), unit="image", disable=True if args.no_progress else None)
    scored = errors = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool, scorer.client, progress:
        pending: dict[int, Future[list[Result]]] = {
            number: pool.submit(scorer.score, batch) for number, batch in enumerate(batches)
        }
        order = iter(range(len(batches)))
        next_batch = next(order, None)
        try:
            for future in as_completed(list(pending.values())):
                progress.update(len(future.result()))
                # Written in input order, as soon as every earlier batch is done.
                while next_batch is not None and pending[next_batch].done():
                    results = pending.pop(next_batch).result()
                    writer.write(results)
                    for result in results:
                        if result.error is None:
                            scored += 1
                        else:
                            errors += 1
                            progress.write(f"error: {result.path}: {result.error}", file=sys.stderr)
                    next_batch = next(order, None)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    elapsed = time.perf_counter() - started
    print(
        f"digits-score: {scored} images scored, {errors} errors, in {elapsed:.1f} s "
        f"({scored / elapsed if elapsed else 0:.0f} images/s)",
        file=sys.stderr,
    )
    return errors


if __name__ == "__main__":
    sys.exit(main())
