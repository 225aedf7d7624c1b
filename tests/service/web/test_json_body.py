"""JSON bodies judged before parsing (service/web/json_body.py) and the bounds on what a
client names and gets echoed (service/web/bounds.py), in process and through both APIs."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.errors import InvalidRequestError
from service.model_card import ModelCard
from service.web.bounds import ID_MAX_LENGTH, checked_id, clip, echo
from service.web.json_body import (
    CHUNK_BYTES,
    JsonBodyError,
    TooManyJsonValuesError,
    check_json_body,
    json_values_bound,
)
from tests.conftest import png_base64

Digits = tuple[np.ndarray, np.ndarray]


@pytest.mark.parametrize(
    ("text", "values"),
    [("1", 1), ("[]", 2), ("[1,2,3]", 4), ('{"a":[1,{}]}', 5), ('"a,[{"', 4)],
)
def test_values_bound_is_an_upper_bound(text: str, values: int) -> None:
    # Exact for structure; characters inside strings overcount, never undercount.
    assert json_values_bound(text.encode(), stop_above=10**9) == values


def test_counting_stops_past_the_limit() -> None:
    body = b"[" + b"0," * (3 * CHUNK_BYTES) + b"0]"
    assert json_values_bound(body, stop_above=10) <= CHUNK_BYTES + 2
    with pytest.raises(TooManyJsonValuesError, match="more than 10 JSON values"):
        check_json_body(body, max_values=10)
    assert bytes(check_json_body(b"[0,0]", max_values=3)) == b"[0,0]"


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ("utf-16", "UTF-16"),
        ("utf-16-le", "UTF-16"),
        ("utf-16-be", "UTF-16"),
        ("utf-32", "UTF-32"),
        ("utf-32-le", "UTF-32"),
        ("utf-32-be", "UTF-32"),
    ],
)
def test_only_utf8_is_json(encoding: str, named: str) -> None:
    with pytest.raises(JsonBodyError, match=f"{named}-encoded; JSON must be sent as UTF-8"):
        check_json_body('{"id": "é"}'.encode(encoding), max_values=100)


def test_invalid_utf8_is_named_and_a_bom_is_ignored() -> None:
    with pytest.raises(JsonBodyError, match=r"not valid UTF-8 \(byte 8\)"):
        check_json_body(b'{"id": "\xe9"}', max_values=100)
    assert bytes(check_json_body(b'\xef\xbb\xbf{"id": "\xc3\xa9"}', 100)) == '{"id": "é"}'.encode()


def test_echo_and_clip_cut_long_text_with_an_ellipsis() -> None:
    assert echo("images") == "'images'" and clip("short") == "short"
    long = "x" * 1000
    assert echo(long) == f"'{'x' * 64}'… (1000 characters)"
    assert clip(long) == f"{'x' * 64}… (1000 characters)"
    assert len(echo(list(range(1000)))) < 100


def test_checked_id_is_the_id_cap() -> None:
    assert checked_id("a" * ID_MAX_LENGTH) == "a" * ID_MAX_LENGTH
    assert checked_id("") is None and checked_id(None) is None
    with pytest.raises(InvalidRequestError) as raised:
        checked_id("a" * 1000, what="file 2's name", index=2)
    assert raised.value.index == 2 and len(raised.value.message) < 200
    assert "file 2's name is 1000 characters long; at most 256" in raised.value.message


def test_both_apis_refuse_utf16_and_take_a_utf8_bom(
    client: TestClient, model_card: ModelCard, clear_digits: Digits
) -> None:
    image = png_base64(clear_digits[0][0])
    v1 = json.dumps({"images": [{"data": image, "id": "é"}]})
    tensor = {"name": "images", "datatype": "BYTES", "shape": [1], "data": [image]}
    v2 = json.dumps({"id": "é", "inputs": [tensor]})
    paths = {"/v1/predict": v1, f"/v2/models/{model_card.name}/infer": v2}
    headers = {"Content-Type": "application/json"}
    for path, text in paths.items():
        wide = client.post(path, content=text.encode("utf-16"), headers=headers)
        assert wide.status_code in (400, 422), wide.text  # each API's status for a bad body
        assert "UTF-16-encoded; JSON must be sent as UTF-8" in wide.text
        bom = client.post(path, content=b"\xef\xbb\xbf" + text.encode(), headers=headers)
        assert bom.status_code == 200, bom.text
        assert "é" in bom.text


def test_the_largest_valid_v1_request_is_within_the_budget(
    make_app: Callable[..., FastAPI], clear_digits: Digits
) -> None:
    # Ids of commas and brackets, data URLs: the most JSON-value-like bytes a valid
    # request can hold, at the image limit.
    image = "data:image/png;base64," + png_base64(clear_digits[0][0])
    ids = [",[{" * (ID_MAX_LENGTH // 3), "[" * ID_MAX_LENGTH, "{" * ID_MAX_LENGTH]
    images = [{"data": image, "id": image_id} for image_id in ids]
    with TestClient(make_app(max_images=3)) as client:
        response = client.post("/v1/predict", json={"images": images, "top_k": 1})
        assert response.status_code == 200, response.text
        assert [p["id"] for p in response.json()["predictions"]] == ids
        many = client.post("/v1/predict", json={"images": [images[0]] * 40})
    assert many.status_code == 422 and "at most 3 images per request" in many.text


def test_the_largest_valid_v2_request_is_within_the_budget(
    make_app: Callable[..., FastAPI], model_card: ModelCard, clear_digits: Digits
) -> None:
    pixels = clear_digits[0][:2]
    nested = pixels[..., np.newaxis].tolist()  # [N, 28, 28, 1]: a list per pixel
    tensor = {"name": "images", "datatype": "UINT8", "shape": [2, 28, 28, 1], "data": nested}
    request = {"id": "," * ID_MAX_LENGTH, "inputs": [tensor]}
    with TestClient(make_app(max_images=2)) as client:
        response = client.post(f"/v2/models/{model_card.name}/infer", json=request)
    assert response.status_code == 200, response.text
