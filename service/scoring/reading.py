"""Reading one file within a byte limit (`read_file`), or learning its size without
reading it (`file_size`): `digits-score` read any file whole, and one 300 MB `.png` took the
remote client to 1.2 GiB (for a 413) and `--local` to 369 MiB. Never blocks on a FIFO.
Only the standard library: the client extra must suffice.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

# The largest file read when nothing else says: DIGITS_MAX_BODY_BYTES' default, the most a
# server takes in one request (and more than any image it would decode within its limits).
DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


@dataclass(frozen=True)
class FileLimit:
    """The largest file read, and where that limit comes from (named in the refusal)."""

    max_bytes: int
    source: str  # e.g. "--max-file-bytes: raise it with --max-file-bytes N"

    def refusal(self, size: int) -> str:
        return (
            f"file too large: {size:,} bytes, over the limit of {self.max_bytes:,} ({self.source})"
        )


def option_limit(max_file_bytes: int | None) -> FileLimit:
    """The limit `--max-file-bytes` sets, or its default."""
    if max_file_bytes is None:
        return FileLimit(
            DEFAULT_MAX_FILE_BYTES, "--max-file-bytes' default: raise it with --max-file-bytes N"
        )
    return FileLimit(max_file_bytes, "--max-file-bytes: raise it with --max-file-bytes N")


class FileRefusedError(Exception):
    """A file not read: too large, not a regular file, or unreadable (the message says)."""


def file_size(path: Path, limit: FileLimit) -> int:
    """The size of the regular file at `path`, checked against `limit` without opening it:
    `FileRefusedError` for a file over the limit, a FIFO, a device or an unreadable one."""
    try:
        info = path.stat()
    except OSError as error:
        raise FileRefusedError(f"cannot read: {error.strerror}") from None
    _check(info, limit)
    return info.st_size


def read_file(path: Path, limit: FileLimit) -> bytes:
    """The bytes of the file at `path`, at most `limit.max_bytes` of them, or
    `FileRefusedError`. Checked by `stat` before opening, then on what was opened
    (the file may have been replaced since), then by length (it may grow): reading
    never takes more than the limit, and never blocks on a FIFO."""
    file_size(path, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        with open(os.open(path, flags), "rb") as stream:  # noqa: PTH123 (a descriptor)
            size = _check(os.fstat(stream.fileno()), limit)
            data = stream.read(size + 1)  # sized by the file, not by the limit
            if len(data) > size:  # grown since: read on, to just past the limit
                data += stream.read(limit.max_bytes + 1 - len(data))
    except OSError as error:
        raise FileRefusedError(f"cannot read: {error.strerror}") from None
    if len(data) > limit.max_bytes:
        raise FileRefusedError(limit.refusal(len(data)))
    return data


def _check(info: os.stat_result, limit: FileLimit) -> int:
    if not stat.S_ISREG(info.st_mode):
        raise FileRefusedError(not_regular(info.st_mode))
    if info.st_size > limit.max_bytes:
        raise FileRefusedError(limit.refusal(info.st_size))
    return info.st_size


def not_regular(mode: int) -> str:
    """The error of a name that is not a regular file: never read (a FIFO would block)."""
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'not a file')}): not read"
