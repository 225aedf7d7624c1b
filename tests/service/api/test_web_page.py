"""The web page in a real browser: draw digits stroke by stroke, upload MNIST digits.

One real service (`python -m service`) and one headless Chromium for the module.
Screenshots land in test-artifacts/web/ (gitignored; CI keeps them as artifacts).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext, FilePayload, Page, expect

from samples.uploads import encode_png
from service.model_card import ModelCard
from tests.service.api.browser import ARTIFACTS, chromium, running_service

TIMEOUT_MS = 20_000  # generous: CI shares two cores with the service and the browser

expect.set_options(timeout=TIMEOUT_MS)

Point = tuple[float, float]  # in fractions of the pad's width and height
Stroke = list[Point]


def _line(start: Point, end: Point, steps: int = 12) -> Stroke:
    return [
        (start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
        for i in range(steps + 1)
    ]


def _ellipse(centre: Point, radius_x: float, radius_y: float, steps: int = 36) -> Stroke:
    # Starts at the top and goes a little past it, as a hand closes a 0.
    return [
        (
            centre[0] + radius_x * math.sin(2 * math.pi * i / steps),
            centre[1] - radius_y * math.cos(2 * math.pi * i / steps),
        )
        for i in range(steps + 2)
    ]


# How a person draws each digit: one list of points per stroke, pen up in between.
DRAWINGS: dict[int, list[Stroke]] = {
    1: [_line((0.52, 0.18), (0.48, 0.84))],
    0: [_ellipse((0.5, 0.5), 0.22, 0.32)],
    7: [_line((0.28, 0.2), (0.72, 0.2)) + _line((0.72, 0.2), (0.42, 0.84))[1:]],
    4: [
        _line((0.5, 0.16), (0.28, 0.58)) + _line((0.28, 0.58), (0.74, 0.58))[1:],
        _line((0.62, 0.36), (0.62, 0.86)),
    ],
}


@pytest.fixture(scope="module")
def service_url() -> Iterator[str]:
    with running_service() as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as context:
        yield context


@pytest.fixture
def page(browser: BrowserContext, service_url: str) -> Iterator[Page]:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Playwright turns on file-chooser interception without waiting for it: subscribing
    # now, long before a test opens one, keeps Chromium's own dialog from winning the race.
    page.on("filechooser", lambda chooser: None)
    page.goto(service_url)
    expect(page.locator("#model")).to_contain_text("mnist-digits-cnn")  # /readyz answered
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _draw(page: Page, strokes: list[Stroke]) -> None:
    """Draws with the mouse like a person: press, many small moves, release, per stroke."""
    box = page.locator("#pad").bounding_box()
    assert box is not None
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(x, y, steps=4)
        page.mouse.up()


def _shown_prediction(page: Page) -> tuple[int, float]:
    """The digit and confidence the page shows, once the answer to the last request is in."""
    result = page.locator("#result")
    expect(result).to_have_attribute("aria-busy", "false")
    expect(result).to_have_attribute("data-state", "done")
    digit = int(page.locator("#digit").inner_text())
    confidence = float(result.get_attribute("data-confidence") or "nan")
    expect(page.locator("#confidence")).to_have_text(f"Confidence {confidence * 100:.1f}%")
    expect(page.locator("#status")).to_have_text(f"The model reads a {digit}.")
    # One bar per digit, the shown digit's highlighted; the model's 28×28 input beside them.
    expect(page.locator("#bars li")).to_have_count(10)
    best_bar = page.locator("#bars li.best")
    expect(best_bar).to_have_attribute("aria-label", f"{digit}: {confidence * 100:.1f}%")
    assert page.locator("#seen").evaluate("image => [image.naturalWidth, image.naturalHeight]") == [
        28,
        28,
    ]
    return digit, confidence


# --- the routes, without a browser -------------------------------------------------------


def test_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport"' in page.text
    for path, media_type in (("static/app.js", "javascript"), ("static/style.css", "text/css")):
        assert f'"{path}"' in page.text  # relative: works under a proxy's path prefix too
        response = client.get("/" + path)
        assert response.status_code == 200, path
        assert media_type in response.headers["content-type"]
    assert client.get("/static/missing.js").status_code == 404
    assert "/" not in client.get("/openapi.json").json()["paths"]


# --- in the browser ----------------------------------------------------------------------


@pytest.mark.parametrize("expected", list(DRAWINGS))
def test_drawn_digit_is_recognised(page: Page, expected: int) -> None:
    with page.expect_request("**/v1/predict") as sent:
        _draw(page, DRAWINGS[expected])
    # The page is a plain client of the public API: JSON, a canvas PNG as a data: URL.
    body = json.loads(sent.value.post_data or "{}")
    assert body["return_preprocessed"] is True
    assert body["images"][0]["data"].startswith("data:image/png;base64,")

    digit, confidence = _shown_prediction(page)
    page.screenshot(path=ARTIFACTS / f"drawn-{expected}.png", full_page=True)
    print(f"drawn {expected}: the page shows {digit} at {confidence:.1%}")
    assert digit == expected
    assert confidence > 0.5

    page.get_by_role("button", name="Clear").click()
    expect(page.locator("#result")).to_have_attribute("data-state", "idle")
    expect(page.locator("#digit")).to_have_text("?")


def test_uploaded_mnist_digits_are_recognised(
    page: Page, clear_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = clear_digits
    chosen = [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)[:3]]
    for index in chosen:
        label = int(labels[index])
        page.locator("#file").set_input_files(
            files=[
                FilePayload(
                    name=f"mnist-{label}.png",
                    mimeType="image/png",
                    buffer=encode_png(images[index]),
                )
            ]
        )
        digit, confidence = _shown_prediction(page)
        page.screenshot(path=ARTIFACTS / f"uploaded-{label}.png", full_page=True)
        print(f"uploaded MNIST {label}: the page shows {digit} at {confidence:.1%}")
        assert digit == label


def test_an_upload_that_is_no_digit_is_called_so(
    page: Page, service_url: str, not_a_digit_card: ModelCard, non_digits: dict[str, bytes]
) -> None:
    # The first picture the model refuses: the filled square, unless this model takes it.
    name, png = next(iter(non_digits.items()))
    page.locator("#file").set_input_files(
        files=[FilePayload(name=f"{name}.png", mimeType="image/png", buffer=png)]
    )
    result = page.locator("#result")
    expect(result).to_have_attribute("data-state", "done")
    expect(result).to_have_attribute("data-is-digit", "false")
    expect(page.locator("#status")).to_have_text("That does not look like a digit.")
    # Instead of the number: no digit shown, none of the bars singled out...
    expect(page.locator("#digit")).to_have_text("✕")
    expect(page.locator("#bars li.best")).to_have_count(0)
    # ...but the not-a-digit probability the API gave, and each digit's bar still.
    answer = httpx.post(
        service_url + "v1/predict", json={"images": [{"data": base64.b64encode(png).decode()}]}
    ).json()["predictions"][0]
    assert answer["is_digit"] is False
    expect(page.locator("#confidence")).to_have_text(
        f"Not a digit: {answer['not_a_digit'] * 100:.1f}%"
    )
    expect(page.locator("#bars li")).to_have_count(10)
    best = max(range(10), key=lambda digit: answer["probabilities"][digit])
    expect(page.locator("#bars li").nth(best)).to_have_attribute(
        "aria-label", f"{best}: {answer['probabilities'][best] * 100:.1f}%"
    )
    page.screenshot(path=ARTIFACTS / "not-a-digit.png", full_page=True)

    # A digit afterwards is a digit again.
    _draw(page, DRAWINGS[7])
    digit, _ = _shown_prediction(page)
    assert digit == 7
    expect(result).to_have_attribute("data-is-digit", "true")


def test_keyboard_upload_of_a_bad_file_shows_the_api_error(page: Page, service_url: str) -> None:
    # Keyboard only: Tab reaches the labelled buttons in order, Enter opens the file chooser.
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Clear")).to_be_focused()
    page.keyboard.press("Tab")
    upload = page.get_by_role("button", name="Upload image…")
    expect(upload).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    notes = b"not a picture"
    chooser.value.set_files(
        files=[FilePayload(name="notes.txt", mimeType="text/plain", buffer=notes)]
    )

    expect(page.locator("#result")).to_have_attribute("data-state", "error")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("HTTP 422, invalid_image")
    # The service's own message, not a generic one.
    answer = httpx.post(
        service_url + "v1/predict", json={"images": [{"data": base64.b64encode(notes).decode()}]}
    )
    assert answer.status_code == 422
    expect(error).to_contain_text(answer.json()["error"]["message"])
    expect(page.locator("#status")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#status")).to_have_text("No prediction.")
    expect(page.locator("#digit")).to_have_text("?")
    page.screenshot(path=ARTIFACTS / "error.png", full_page=True)


def test_phone_layout_and_touch_drawing(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    # Touch input through the DevTools protocol: the page sees pointerType "touch".
    session = page.context.new_cdp_session(page)
    session.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    box = page.locator("#pad").bounding_box()
    assert box is not None
    points = [
        {"x": box["x"] + x * box["width"], "y": box["y"] + y * box["height"]}
        for x, y in DRAWINGS[1][0]
    ]
    session.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points[:1]})
    for point in points[1:]:
        session.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    session.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    digit, confidence = _shown_prediction(page)
    assert page.evaluate("window.scrollY") == 0  # drawing must not scroll the page
    page.screenshot(path=ARTIFACTS / "phone.png", full_page=True)
    print(f"touch-drawn 1 on a phone-sized page: {digit} at {confidence:.1%}")
    assert digit == 1
