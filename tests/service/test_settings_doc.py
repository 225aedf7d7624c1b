"""The README's settings table is the one the code generates."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings
from service.settings_doc import BEGIN, END, markdown_table, replace_table, setting_descriptions

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    descriptions = setting_descriptions()
    for name in Settings.model_fields:
        assert descriptions.get(name), f"Settings.{name} has no docstring"


def test_readme_table_matches_the_settings() -> None:
    text = README.read_text()
    assert BEGIN in text and END in text
    assert replace_table(text) == text, (
        "README settings table is stale: run `python -m service.settings_doc --write README.md`"
    )
    for name in Settings.model_fields:
        assert f"`DIGITS_{name.upper()}`" in markdown_table()
