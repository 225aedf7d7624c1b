"""`digits-score PATH...`: recognize the digits in image files, in batches.

Against a running service (`--url`; service/scoring/remote.py, the `client` extra only:
httpx and tqdm, nothing of the server) or in this process (`--local`, the runtime itself:
service/scoring/local.py, the `serve` extra). Writes `path,digit,confidence,error,
is_digit,not_a_digit` per file, in input order (service/scoring/results.py), every file
found a row (service/scoring/files.py), to standard output or, whole or not at all, to
`--output` (service/scoring/output.py). The exit status tells a failed run from failed
files (`EXIT_STATUS_HELP`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import closing
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from service.errors import ModelLoadError
from service.scoring.files import Entry, collect
from service.scoring.output import (
    CRASHED,
    EXIT_STATUS_HELP,
    FAILED_FILES,
    INTERRUPTED,
    SCORED,
    USAGE,
    OutputError,
    check_output,
    open_output,
)
from service.scoring.reading import DEFAULT_MAX_FILE_BYTES
from service.scoring.results import Result, Writer, escape_name

DESCRIPTION = """\
Recognize the digits in image files with a running digits service, or in this process.
Writes path,digit,confidence,error,is_digit,not_a_digit per file (error empty when
scored; is_digit and not_a_digit empty for a model without the not-a-digit output).
Every file gets its row: a FIFO, a device or a dangling link an error row, never opened.
A file name that is not UTF-8, or holds \\x, is written escaped: each byte that is not
UTF-8 as \\xNN, each backslash doubled."""


_KEPT = "; --output is left as it was"


class Scorer(Protocol):
    def score(self, paths: list[Path]) -> list[Result]: ...

    def close(self) -> None: ...


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="digits-score",
        description=DESCRIPTION,
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.add_argument("--force", action="store_true", help="replace an existing --output")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv", dest="fmt")
    parser.add_argument(
        "--max-file-bytes",
        type=int,
        metavar="N",
        help="larger files are error rows, not read (default: what the server's body limit "
        f"holds once base64-encoded; with --local, or a server that does not say, "
        f"{DEFAULT_MAX_FILE_BYTES} = DIGITS_MAX_BODY_BYTES' default)",
    )
    parser.add_argument("--retries", type=int, default=5, help="per request (503, no connection)")
    parser.add_argument("--backoff", type=float, default=0.5, help="first retry delay, seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    for name in ("batch_size", "concurrency", "max_file_bytes"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.retries < 0 or args.backoff < 0 or args.timeout <= 0:
        parser.error("--retries and --backoff must be ≥ 0, --timeout > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)  # exits with status 2 on bad arguments
    try:
        return _score(args)
    except OutputError as error:
        print(f"digits-score: error: {error}", file=sys.stderr)
        if args.output is None:  # a closed pipe: nothing more reaches it, not even at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return error.status
    except KeyboardInterrupt:
        print(f"digits-score: interrupted{_KEPT if args.output else ''}", file=sys.stderr)
        return INTERRUPTED
    except Exception:
        # A bug: its traceback, and a status no partial result shares (it used to exit 1,
        # as "some files failed" does, with the output cut short).
        traceback.print_exc()
        print(f"digits-score: internal error{_KEPT if args.output else ''}", file=sys.stderr)
        return CRASHED


def _score(args: argparse.Namespace) -> int:
    check_output(args.output, force=args.force)
    entries, unmatched = collect(args.paths)
    for pattern in unmatched:
        print(f"digits-score: error: no such file, or nothing matches: {pattern}", file=sys.stderr)
    if not entries:
        print("digits-score: error: no image files to score", file=sys.stderr)
        return USAGE
    try:
        scorer = _scorer(args)
    except ModelLoadError as error:  # --local only: the model is checked before any file
        print(f"digits-score: error: {error}", file=sys.stderr)
        return USAGE
    with open_output(args.output) as stream:
        target = str(args.output or "standard output")
        errors = _run(args, scorer, entries, Writer(stream, args.fmt), target) + len(unmatched)
    return FAILED_FILES if errors else SCORED


def _scorer(args: argparse.Namespace) -> Scorer:
    if not args.local:
        from service.scoring.remote import HttpScorer

        timing = {"timeout": args.timeout, "retries": args.retries, "backoff": args.backoff}
        return HttpScorer(args.url, max_file_bytes=args.max_file_bytes, **timing)
    # Imported only here: the remote mode must work with the client extra alone.
    from service.runtime.recognizer import Recognizer
    from service.scoring.local import LocalScorer

    return LocalScorer(Recognizer.open(), max_file_bytes=args.max_file_bytes)


def _score_batch(scorer: Scorer, batch: list[Entry]) -> list[Result]:
    """Rows for a batch, in order: the files scored, and those found unfit to read (a FIFO,
    a dangling link...) with their error."""
    scored = iter(scorer.score([entry.path for entry in batch if entry.error is None]))
    return [
        next(scored) if entry.error is None else Result(str(entry.path), error=entry.error)
        for entry in batch
    ]


def _run(
    args: argparse.Namespace, scorer: Scorer, entries: list[Entry], writer: Writer, target: str
) -> int:
    size = args.batch_size
    batches = [entries[i : i + size] for i in range(0, len(entries), size)]
    progress = tqdm(total=len(entries), unit="image", disable=True if args.no_progress else None)
    scored = errors = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool, closing(scorer), progress:
        pending: dict[int, Future[list[Result]]] = {
            number: pool.submit(_score_batch, scorer, batch) for number, batch in enumerate(batches)
        }
        order = iter(range(len(batches)))
        next_batch = next(order, None)
        try:
            for future in as_completed(list(pending.values())):
                progress.update(len(future.result()))
                # Written in input order, as soon as every earlier batch is done.
                while next_batch is not None and pending[next_batch].done():
                    results = pending.pop(next_batch).result()
                    _write(writer, results, target)
                    for result in results:
                        if result.error is None:
                            scored += 1
                        else:
                            errors += 1
                            name = escape_name(result.path)
                            progress.write(f"error: {name}: {result.error}", file=sys.stderr)
                    next_batch = next(order, None)
        except BaseException:
            # Ctrl-C, an unwritable output, a bug: no more batches are started.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    elapsed = time.perf_counter() - started
    print(
        f"digits-score: {scored} images scored, {errors} errors, in {elapsed:.1f} s "
        f"({scored / elapsed if elapsed else 0:.0f} images/s)",
        file=sys.stderr,
    )
    return errors


def _write(writer: Writer, results: list[Result], target: str) -> None:
    try:
        writer.write(results)
    except OSError as error:  # a full disk, a closed pipe
        raise OutputError(f"cannot write {target}: {error.strerror}", CRASHED) from None


if __name__ == "__main__":
    sys.exit(main())
