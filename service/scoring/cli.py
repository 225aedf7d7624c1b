"""`digits-score PATH...`: recognize the digits in image files, in batches.

Against a running service (`--url`; service/scoring/remote.py, the `client` extra only:
httpx and tqdm, nothing of the server) or in this process (`--local`, the runtime itself:
service/scoring/local.py, the `serve` extra). Writes `path,digit,confidence,error,
is_digit,not_a_digit` per file, in input order (service/scoring/results.py).
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import closing
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from service.errors import ModelLoadError
from service.scoring.results import Result, Writer

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})


class Scorer(Protocol):
    def score(self, paths: list[Path]) -> list[Result]: ...

    def close(self) -> None: ...


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


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digits-score",
        description="Recognize the digits in image files with a running digits service. "
        "Writes path,digit,confidence,error,is_digit,not_a_digit per file (error empty when "
        "scored; is_digit and not_a_digit empty for a model without the not-a-digit output).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="file, folder or glob pattern")
    parser.add_argument("--url", default="http://localhost:8000", help="the service's base URL")
    parser.add_argument(
        "--local",
        action="store_true",
        help="no server: run the model in this process (the serve extra; DIGITS_MODEL_CARD, "
        "DIGITS_MODEL_FILE and the other DIGITS_* settings apply)",
    )
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
    try:
        scorer = _scorer(args)
    except ModelLoadError as error:  # --local only: the model is checked before any file
        print(f"digits-score: error: {error}", file=sys.stderr)
        return 2
    stream = args.output.open("w", newline="") if args.output else sys.stdout
    try:
        errors = _run(args, scorer, files, Writer(stream, args.fmt)) + len(unmatched)
    except KeyboardInterrupt:
        print("digits-score: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.output:
            stream.close()
    return 1 if errors else 0


def _scorer(args: argparse.Namespace) -> Scorer:
    if not args.local:
        from service.scoring.remote import HttpScorer

        timing = {"timeout": args.timeout, "retries": args.retries, "backoff": args.backoff}
        return HttpScorer(args.url, **timing)
    # Imported only here: the remote mode must work with the client extra alone.
    from service.runtime.recognizer import Recognizer
    from service.scoring.local import LocalScorer

    return LocalScorer(Recognizer.open())


def _run(args: argparse.Namespace, scorer: Scorer, files: list[Path], writer: Writer) -> int:
    batches = [files[i : i + args.batch_size] for i in range(0, len(files), args.batch_size)]
    progress = tqdm(total=len(files), unit="image", disable=True if args.no_progress else None)
    scored = errors = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool, closing(scorer), progress:
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
