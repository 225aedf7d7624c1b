"""The README's settings table, generated from the `Settings` field docstrings.

`python -m service.settings_doc` prints it; `--write README.md` replaces the table
between the markers in place. A test fails when the README has drifted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.settings import Settings

BEGIN = "<!-- settings-table:begin -->"
END = "<!-- settings-table:end -->"


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if str(value) else '""'


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `DIGITS_{name.upper()}` | `{_default(field.default)}` | {description} |")
    return "\n".join(rows)


def replace_table(text: str) -> str:
    """`text` with the table between the markers regenerated."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{markdown_table()}\n{text[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, metavar="README", help="update this file in place")
    args = parser.parse_args(argv)
    if args.write is None:
        print(markdown_table())
        return 0
    args.write.write_text(replace_table(args.write.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
