"""The README's settings table, generated from the `Settings` field docstrings.

`python -m service.settings_doc` prints it; `--write README.md` replaces the table
between the markers in place. A test fails when the README has drifted.

The docstrings are read from the source here, when documentation is asked for, not by
pydantic each time `Settings` is imported (`use_attribute_docstrings` cost ~40 ms of
every start, AMD EPYC).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
from functools import cache
from itertools import pairwise
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


@cache
def setting_descriptions() -> dict[str, str]:
    """Each `Settings` field's docstring (the string literal right after it), on one line."""
    (definition,) = ast.parse(inspect.getsource(Settings)).body
    assert isinstance(definition, ast.ClassDef)
    descriptions = {}
    for statement, following in pairwise(definition.body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            descriptions[statement.target.id] = " ".join(following.value.value.split())
    return descriptions


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        description = setting_descriptions().get(name, "").replace("|", "\\|")
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
