"""`digits-score` on hostile files (issue 24): a huge file, names that are not UTF-8,
symbolic link loops, FIFOs, devices and dangling links; the real CLI, as a subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from samples.uploads import encode_png
from tests.service.scoring.cli_runs import csv_rows, name_bytes, run_cli, run_cli_with_peak

Digits = tuple[np.ndarray, np.ndarray]
HUGE = 300 * 1024 * 1024  # `truncate -s 300M`: sparse, no disk used
MiB = 1024 * 1024


def test_a_file_over_the_limit_is_an_error_row_and_is_not_read(
    base_url: str, tmp_path: Path, clear_digits: Digits
) -> None:
    """Finding 6: a 300 MB `.png` took the remote client to 1.2 GiB (a ~400 MB body, then a
    413) and `--local` to 369 MiB. Now it is sized first and refused unread, naming the
    limit and how to raise it; the other files are scored."""
    images, labels = clear_digits
    huge, digit = tmp_path / "huge.png", tmp_path / "seven.png"
    with huge.open("wb") as sparse:
        sparse.truncate(HUGE)
    digit.write_bytes(encode_png(images[0]))
    runs = {
        "remote": run_cli_with_peak(str(huge), str(digit), "--url", base_url, "--retries", "0"),
        "local": run_cli_with_peak(str(huge), str(digit), "--local"),
    }
    for mode, (result, peak) in runs.items():
        # Half the file: whatever else the process holds, it did not hold the file.
        assert peak < HUGE // 2, f"{mode}: peak RSS {peak / MiB:.0f} MiB; {result.stderr[-300:]}"
        rows = {Path(row["path"]).name: row for row in csv_rows(result.stdout)}
        assert rows["huge.png"]["digit"] == "", rows
        assert f"file too large: {HUGE:,} bytes, over the limit of" in rows["huge.png"]["error"]
        assert rows["seven.png"]["digit"] == str(labels[0]), rows
        assert result.returncode == 1, result.stderr
    remote_error = csv_rows(runs["remote"][0].stdout)[0]["error"]
    assert "DIGITS_MAX_BODY_BYTES=33554432" in remote_error, remote_error
    assert "raise it on the server" in remote_error
    assert "33,554,432 (--max-file-bytes' default" in csv_rows(runs["local"][0].stdout)[0]["error"]

    small = run_cli(str(digit), "--local", "--max-file-bytes", "100", "--no-progress")
    (row,) = csv_rows(small.stdout)
    assert row["error"] == (
        f"file too large: {digit.stat().st_size:,} bytes, over the limit of 100 "
        "(--max-file-bytes: raise it with --max-file-bytes N)"
    ), small.stderr
    assert small.returncode == 1


def test_names_that_are_not_utf8_get_their_rows_written_losslessly(
    base_url: str, tmp_path: Path, clear_digits: Digits
) -> None:
    """Finding 7: a file name that is not UTF-8 crashed `--output` CSV mid-run (a
    traceback, the rows after it lost, exit 1 as for failed files). Every file now gets
    its row, the name escaped so that its bytes come back exactly."""
    images, labels = clear_digits
    folder = tmp_path / "scans"
    names = [b"0-plain.png", b"1-latin1-\xe9.png", b"2-\xff\xfe.png", b"3-back\\x41slash.png"]
    folder.mkdir()
    files = [folder / os.fsdecode(name) for name in names]  # the bytes, as the OS gives them
    for number, path in enumerate(files):
        path.write_bytes(encode_png(images[number]))
    expected = [os.fsencode(path) for path in files]
    for mode, fmt in (("--local", "csv"), ("--url", "jsonl")):
        out = tmp_path / f"scores-{fmt}"
        where = [mode] if mode == "--local" else [mode, base_url]
        result = run_cli(str(folder), *where, "--output", str(out), "--format", fmt)
        text = out.read_text(encoding="utf-8") if out.exists() else ""
        rows = csv_rows(text) if fmt == "csv" else [json.loads(line) for line in text.splitlines()]
        assert len(rows) == len(names), f"{mode} {fmt}: {len(rows)} rows; {result.stderr[-600:]}"
        assert [name_bytes(row["path"]) for row in rows] == expected
        assert [int(row["digit"]) for row in rows] == labels[: len(names)].tolist()
        assert rows[2]["path"].endswith("2-\\xff\\xfe.png"), rows[2]
        assert rows[3]["path"].endswith("3-back\\\\x41slash.png"), rows[3]  # holds \x: escaped
        assert rows[0]["path"] == os.fsdecode(expected[0])  # a plain name is as it is
        assert result.returncode == 0, result.stderr


def test_links_into_loops_are_not_followed_and_special_files_are_error_rows(
    tmp_path: Path, clear_digits: Digits
) -> None:
    """Finding 11: `'dir/**/*.png'` over two symbolic link loops hung while collecting
    files (one loop scored a file 41 times), and FIFOs and dangling links were dropped
    silently. Each file is now scored once; a FIFO (never opened: that blocks), a device,
    a dangling link and a link loop are error rows."""
    images, labels = clear_digits
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.png").write_bytes(encode_png(images[0]))
    (root / "sub" / "b.png").write_bytes(encode_png(images[1]))
    (root / "loop").symlink_to(".")  # tree/loop -> tree
    (root / "sub" / "up").symlink_to("..")  # tree/sub/up -> tree
    (root / "again.png").symlink_to("a.png")  # the same file by another name: once
    os.mkfifo(root / "pipe.png")
    (root / "gone.png").symlink_to("nowhere.png")
    (root / "null.png").symlink_to(os.devnull)
    (root / "self.png").symlink_to("self.png")
    errors = {
        "gone.png": "a dangling symbolic link (its target does not exist)",
        "null.png": "not a regular file (a character device): not read",
        "pipe.png": "not a regular file (a FIFO): not read",
        "self.png": "a symbolic link in a loop: not followed",
    }
    for pattern in (str(root / "**" / "*.png"), str(root)):
        result = run_cli(pattern, "--local", "--no-progress", timeout=60)
        rows = csv_rows(result.stdout)
        paths = [str(Path(row["path"]).relative_to(root)) for row in rows]
        assert paths == ["a.png", *sorted(errors), "sub/b.png"], (pattern, result.stderr)
        assert [rows[0]["digit"], rows[-1]["digit"]] == [str(labels[0]), str(labels[1])]
        assert {
            path: row["error"] for path, row in zip(paths[1:-1], rows[1:-1], strict=True)
        } == errors
        assert result.returncode == 1, result.stderr
