"""Which files are scored, for `digits-score` and `digits-score-ray` alike (`collect`).

Trees are not trusted: symbolic links may loop (a folder is entered once per point of a
pattern, known by `(st_dev, st_ino)`: `**` over two loops used to hang), one file may be
reached by many names (scored once, under the first), and FIFOs, devices and dangling links
become error rows instead of vanishing, without ever being opened (opening a FIFO blocks).
Only the standard library: the client extra must suffice.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from service.scoring.reading import not_regular

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
_MAGIC = re.compile(r"[*?[]")


@dataclass(frozen=True)
class Entry:
    """A file to score, or (`error` set) one reported without being read."""

    path: Path
    error: str | None = None


def collect(patterns: list[str]) -> tuple[list[Entry], list[str]]:
    """Files from paths, folders (recursively: image suffixes only) and glob patterns, in
    order, each file once however many names reach it; and the patterns that matched
    nothing. A name that is not a file to read (a FIFO, a device, a dangling link) is an
    entry with its error."""
    found: dict[object, Entry] = {}
    unmatched = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            walked = _walk(path, ["**", "*"], hidden=True)
            named = [(p, e) for p, e in walked if e or p.suffix.lower() in IMAGE_SUFFIXES]
        elif _exists(path):
            named = [(path, None)]  # named explicitly: scored whatever its suffix
        elif _MAGIC.search(pattern):
            named = list(_walk(*_split(pattern), hidden=False))
        else:
            named = []
        entries = [entry for entry in (_entry(*item) for item in named) if entry is not None]
        for key, entry in sorted(entries, key=lambda keyed: keyed[1].path.parts):
            found.setdefault(key, entry)
        if not entries:
            unmatched.append(pattern)
    return list(found.values()), unmatched


def _split(pattern: str) -> tuple[Path, list[str]]:
    """Where a glob pattern's walk starts, and its components (`/data/**/*.png`: `/`;
    `data`, `**`, `*.png`)."""
    path = Path(pattern)
    return Path(path.anchor), list(path.parts[1:] if path.anchor else path.parts)


def _walk(root: Path, parts: list[str], *, hidden: bool) -> Iterator[tuple[Path, str | None]]:
    """The paths under `root` matching `parts` (`**`: any number of folders), and folders
    that cannot be listed, with the error. A folder is entered at most once for each
    component (by `(st_dev, st_ino)`): what it holds from there is already known, and a
    link back up the tree (a loop) adds nothing."""
    seen: set[tuple[int, int, int]] = set()
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        path, index = stack.pop()
        if index == len(parts):
            yield path, None
            continue
        part = parts[index]
        if part != "**" and not _MAGIC.search(part):
            stack.append((path / part, index + 1))  # literal: followed, not listed
            continue
        try:
            info = path.stat()
        except OSError:
            continue  # not there, or a dangling link: nothing under it
        if not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino, index) in seen:
            continue
        seen.add((info.st_dev, info.st_ino, index))
        try:
            with os.scandir(path) as listing:
                children = sorted((entry.name, _is_dir(entry)) for entry in listing)
        except OSError as error:
            yield path, f"cannot list the folder: {error.strerror}"
            continue
        # As glob: wildcards skip hidden names unless the component itself starts with "."
        shown = hidden or part.startswith(".")
        names = [(name, is_dir) for name, is_dir in children if shown or name[0] != "."]
        if part == "**":
            last = index + 1 == len(parts)
            later = [(path, index + 1)] + [(path / n, index) for n, is_dir in names if is_dir]
            later += [(path / n, index + 1) for n, is_dir in names if last and not is_dir]
        else:
            matching = set(fnmatch.filter([name for name, _ in names], part))
            later = [(path / name, index + 1) for name, _ in names if name in matching]
        stack.extend(reversed(later))


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows links; False for a dangling one
    except OSError:
        return False  # a link in a loop: reported as a file would be, not entered


def _exists(path: Path) -> bool:
    try:
        path.lstat()
    except OSError:
        return False
    return True


def _entry(path: Path, error: str | None) -> tuple[object, Entry] | None:
    """`path` as an entry, and what makes it one file (`(st_dev, st_ino)`); None for a
    folder, or nothing there."""
    if error is not None:
        return ("unreadable", str(path)), Entry(path, error)
    try:
        info = path.stat()  # follows links: what would be read
    except OSError as problem:
        if not _exists(path):
            return None
        return ("unreadable", str(path)), Entry(path, _link_error(problem))
    if stat.S_ISDIR(info.st_mode):
        return None
    key = (info.st_dev, info.st_ino)
    if stat.S_ISREG(info.st_mode):
        return key, Entry(path)
    return key, Entry(path, not_regular(info.st_mode))


def _link_error(problem: OSError) -> str:
    if isinstance(problem, FileNotFoundError):
        return "a dangling symbolic link (its target does not exist)"
    if problem.errno == errno.ELOOP:
        return "a symbolic link in a loop: not followed"
    return f"cannot read: {problem.strerror}"
