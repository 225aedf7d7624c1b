"""The loader and the not-a-digit output: the card says whether the model has it (11 outputs)
or not (10), and a file that disagrees with its card is refused at start-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.errors import ModelLoadError
from service.model_card import ModelCard
from service.runtime.recognizer import Recognizer
from service.settings import Settings
from tests.conftest import MODEL_CARD, TEN_OUTPUT_CARD

NOT_A_DIGIT = {
    "output_index": 10,
    "method": "claimed by this test",
    "training_negatives": 0,
    "kinds": [],
    "held_out": "none",
}


def _copy(card_path: Path, folder: Path) -> dict[str, Any]:
    """The card's serving-default file copied into `folder`; the card's JSON, to edit."""
    card: dict[str, Any] = json.loads(card_path.read_text())
    served = card["artifacts"][card["serving_default"]]["file"]
    (folder / served).write_bytes((card_path.parent / served).read_bytes())
    return card


def _load(folder: Path, card: dict[str, Any]) -> Recognizer:
    (folder / "model.json").write_text(json.dumps(card))
    recognizer = Recognizer(Settings(model_card=folder / "model.json", interpreters=1))
    recognizer.load()
    return recognizer


def _refusal(folder: Path, card: dict[str, Any]) -> str:
    with pytest.raises(ModelLoadError) as failure:
        _load(folder, card)
    return str(failure.value)


def test_a_ten_output_card_loads_and_claiming_the_output_is_refused(tmp_path: Path) -> None:
    card = _copy(TEN_OUTPUT_CARD, tmp_path)
    recognizer = _load(tmp_path, card)  # as it is: 10 outputs, no not-a-digit
    assert recognizer.model.card.outputs == 10
    assert recognizer.score(np.zeros((1, 28, 28), np.float32)).not_a_digit is None

    card["not_a_digit"] = NOT_A_DIGIT
    message = _refusal(tmp_path, card)
    assert "output shape [10] is not [11] (10 digits and not-a-digit, as its card says)" in message
    assert "\n" not in message


def test_an_eleven_output_card_must_say_so(tmp_path: Path, not_a_digit_card: ModelCard) -> None:
    card = _copy(MODEL_CARD, tmp_path)
    assert _load(tmp_path, card).model.card.outputs == 11
    del card["not_a_digit"]
    assert "output shape [11] is not [10] (10 digits, as its card says)" in _refusal(tmp_path, card)
