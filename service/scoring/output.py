"""Where `digits-score` writes, and what its exit status says (`digits-score-ray` too).

An `--output` file appears whole or not at all: rows go to a temporary file beside it,
renamed into place once the last is written, so a run that fails (a crash, Ctrl-C, a
full disk) leaves an earlier result as it was. An existing file is replaced only with
`--force`: a run against a server that was down used to truncate yesterday's scores
at start and leave its error rows instead.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

# Exit statuses, the same for digits-score and digits-score-ray.
SCORED, FAILED_FILES, USAGE, CRASHED, INTERRUPTED = 0, 1, 2, 3, 130
EXIT_STATUS_HELP = """exit status (digits-score and digits-score-ray):
  0    every file scored
  1    some files were not scored: their rows hold the error (or a path matched
       nothing); every other row is written
  2    usage: bad arguments, nothing to score, --output exists (digits-score,
       without --force), no model (--local), no Ray (digits-score-ray)
  3    the run failed: the output cannot be written, the Ray job failed, or an
       internal error (with its traceback); digits-score's --output is left as it was
  130  interrupted (Ctrl-C); digits-score's --output is left as it was"""


class OutputError(Exception):
    """The output cannot be written (exit status 3) or may not be (`--force`, status 2)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def check_output(output: Path | None, *, force: bool) -> None:
    """Refuses, before any work, an output that exists unless `force`."""
    if output is not None and not force and (output.exists() or output.is_symlink()):
        raise OutputError(f"{output} exists; --force replaces it", USAGE)


@contextmanager
def open_output(output: Path | None) -> Iterator[IO[str]]:
    """A text stream for the rows: standard output, or a temporary file beside `output`
    renamed to it when the block ends without an exception (and removed if it does not)."""
    if output is None:
        yield sys.stdout
        return
    temporary = output.with_name(f".{output.name}.{secrets.token_hex(4)}.tmp")
    try:
        # O_EXCL: never another's file; mode 0o666 less the umask, as open() would give.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise OutputError(f"cannot write {output}: {error.strerror}", CRASHED) from None
    stream = open(descriptor, "w", encoding="utf-8", newline="")  # noqa: PTH123, SIM115
    try:
        yield stream
    except BaseException:
        stream.close()
        temporary.unlink(missing_ok=True)
        raise
    try:
        stream.close()  # the last rows reach the disk here: a full disk fails here
        temporary.replace(output)
    except OSError as error:
        raise OutputError(f"cannot write {output}: {error.strerror}", CRASHED) from None
    finally:
        temporary.unlink(missing_ok=True)
