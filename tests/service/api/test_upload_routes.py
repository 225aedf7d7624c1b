"""POST /v1/predict/upload: multipart files, the same answers and limits as /v1/predict."""

from __future__ import annotations

import base64
import contextlib
import io
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from samples.uploads import encode_jpeg, encode_png, paper_photo
from service.api.schemas import PredictResponse
from service.web.bounds import ID_MAX_LENGTH
from tests.subprocess_server import server_process

Digits = tuple[np.ndarray, np.ndarray]
UPLOAD = "/v1/predict/upload"


def _files(*named: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in named]


def test_files_are_predicted_in_order_named_by_file(
    client: TestClient, clear_digits: Digits
) -> None:
    images, labels = clear_digits
    rng = np.random.default_rng(5)
    uploads = [(f"digit-{i}.png", encode_png(image)) for i, image in enumerate(images[:4])]
    uploads.append(("photo.jpg", encode_jpeg(paper_photo(images[4], rng), quality=85)))

    response = client.post(UPLOAD, files=_files(*uploads), data={"top_k": "2"})

    assert response.status_code == 200, response.text
    body = PredictResponse.model_validate(response.json())
    assert [p.id for p in body.predictions] == [name for name, _ in uploads]
    assert [p.digit for p in body.predictions] == labels[:5].tolist()
    assert all(len(p.top_k) == 2 for p in body.predictions)


def test_same_answer_as_json_predict(client: TestClient, clear_digits: Digits) -> None:
    images, _ = clear_digits
    png = encode_png(images[0])
    upload = client.post(UPLOAD, files=_files(("a.png", png)), data={"return_preprocessed": "true"})
    request = {"images": [{"id": "a.png", "data": base64.b64encode(png).decode()}]}
    json_body = client.post("/v1/predict", json={**request, "return_preprocessed": True})
    assert upload.status_code == json_body.status_code == 200
    assert upload.json() == json_body.json()


def test_bad_file_is_422_naming_it(client: TestClient, clear_digits: Digits) -> None:
    images, _ = clear_digits
    good = encode_png(images[0])
    for bad, message in [(b"not an image", "not a recognised image"), (b"", "is empty")]:
        response = client.post(UPLOAD, files=_files(("good.png", good), ("bad.png", bad)))
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["index"] == 1 and message in error["message"]


@pytest.mark.parametrize(
    ("send", "status", "message"),
    [
        ({"data": {"top_k": "3"}, "files": None}, 415, "multipart/form-data"),
        ({"json": {"images": []}}, 415, "got application/json"),
        ({"data": {"top_k": "0"}, "files": [("file", ("a.png", b"x", "image/png"))]}, 422, "top_k"),
        ({"files": [("other", ("a.png", b"x", "image/png"))]}, 422, "file: Field required"),
    ],
)
def test_bad_requests(client: TestClient, send: dict, status: int, message: str) -> None:
    response = client.post(UPLOAD, **send)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_limits_apply(make_app: Callable[..., FastAPI], clear_digits: Digits) -> None:
    images, _ = clear_digits
    png = encode_png(images[0])
    with TestClient(make_app(max_images=2, max_body_bytes=8192, max_pixels=10_000)) as client:
        many = client.post(UPLOAD, files=_files(*[(f"{i}.png", png) for i in range(3)]))
        assert many.status_code == 422 and "at most 2 images" in many.json()["error"]["message"]

        noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
        large = client.post(UPLOAD, files=_files(("big.png", encode_png(noise) * 4)))
        assert large.status_code == 413

        wide = Image.new("L", (200, 100))  # 20,000 pixels; compresses to almost nothing
        buffer = io.BytesIO()
        wide.save(buffer, format="PNG")
        too_many_pixels = client.post(UPLOAD, files=_files(("wide.png", buffer.getvalue())))
        assert too_many_pixels.status_code == 422
        assert too_many_pixels.json()["error"]["code"] == "image_too_large"


# --- one rule for form fields: as strict as the JSON body ---------------------------------


def _json_error(client: TestClient, png: bytes, **fields: object) -> dict:
    body = {"images": [{"data": base64.b64encode(png).decode()}], **fields}
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 422
    return response.json()["error"]


@pytest.mark.parametrize(
    ("field", "text", "as_json"),
    [
        ("top_k", "3.0", 3.0),
        ("top_k", " 3 ", " 3 "),
        ("top_k", "+3", "+3"),
        ("top_k", "03", "03"),
        ("top_k", "1e0", 1e0),
        ("top_k", "true", True),
        ("return_preprocessed", "yes", "yes"),
        ("return_preprocessed", "on", "on"),
        ("return_preprocessed", "1", 1),
        ("return_preprocessed", " true", " true"),
    ],
)
def test_form_fields_are_as_strict_as_json(
    client: TestClient, clear_digits: Digits, field: str, text: str, as_json: object
) -> None:
    png = encode_png(clear_digits[0][0])
    response = client.post(UPLOAD, files=_files(("a.png", png)), data={field: text})
    assert response.status_code == 422, response.text
    # The error a JSON body gets for the same value: same status, code and message.
    assert response.json()["error"] == _json_error(client, png, **{field: as_json})


@pytest.mark.parametrize(
    ("fields", "top_k", "preprocessed"),
    [
        ({"top_k": "1", "return_preprocessed": "true"}, 1, True),
        ({"top_k": "10", "return_preprocessed": "false"}, 10, False),
        # What clients generated from openapi.json send (Python's str(bool)).
        ({"return_preprocessed": "True"}, 3, True),
        ({"return_preprocessed": "False"}, 3, False),
    ],
)
def test_form_fields_spelt_as_json_values_are_accepted(
    client: TestClient, clear_digits: Digits, fields: dict, top_k: int, preprocessed: bool
) -> None:
    png = encode_png(clear_digits[0][0])
    response = client.post(UPLOAD, files=_files(("a.png", png)), data=fields)
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    assert len(prediction["top_k"]) == top_k
    assert ("preprocessed" in prediction) is preprocessed


def test_unknown_and_repeated_form_fields_are_refused(
    client: TestClient, clear_digits: Digits
) -> None:
    png = encode_png(clear_digits[0][0])
    misspelt = client.post(UPLOAD, files=_files(("a.png", png)), data={"topk": "3"})
    assert misspelt.status_code == 422
    assert misspelt.json()["error"] == _json_error(client, png, topk=3)
    twice = client.post(
        UPLOAD, files=[*_files(("a.png", png)), ("top_k", (None, b"2"))], data={"top_k": "3"}
    )
    assert twice.status_code == 422
    assert twice.json()["error"]["message"].startswith("top_k: ")


def test_malformed_multipart_is_a_422(client: TestClient) -> None:
    response = client.post(
        UPLOAD,
        content=b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert "request body" in response.json()["error"]["message"]


def test_a_file_over_starlettes_spool_threshold_is_predicted(
    client: TestClient, clear_digits: Digits
) -> None:
    # Starlette moves a file over 1 MiB to a temporary file; ours stay in memory (below).
    digit = np.kron(clear_digits[0][0], np.ones((56, 56), dtype=np.uint8))  # 1568 × 1568
    noise = np.random.default_rng(1).integers(0, 32, digit.shape, dtype=np.uint8)
    png = encode_png(np.maximum(digit, noise))
    assert len(png) > 1024 * 1024
    response = client.post(UPLOAD, files=_files(("big.png", png)))
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["digit"] == int(clear_digits[1][0])


# --- a real server: stalled uploads use no temporary files ---------------------------------


def _deleted_files_in(folder: Path, pids: list[int]) -> int:
    """Bytes of the deleted files under `folder` that the processes hold open (temp files)."""
    total = 0
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = str(fd.readlink())
                if target.startswith(str(folder)) and target.endswith("(deleted)"):
                    total += fd.stat().st_size
    return total


def _stalled_upload(port: int, size: int) -> socket.socket:
    """A multipart upload whose file is sent but for its last KiB, then nothing more."""
    part = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n'
        b"Content-Type: image/png\r\n\r\n"
    )
    length = len(part) + size + len(b"\r\n--b--\r\n")
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(
        b"POST /v1/predict/upload HTTP/1.1\r\nHost: test\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + part
        + bytes(size - 1024)
    )
    return connection


def test_stalled_uploads_fill_no_temp_folder(tmp_path: Path, clear_digits: Digits) -> None:
    """Issue 13 item 11: three stalled 30 MB uploads held 90 MB of deleted temp files (the
    pod's /tmp is a 64 MiB emptyDir) until the request timeout; now none at all."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp), "DIGITS_WORKERS": "1"}
    with server_process(env) as server:
        stalled = [_stalled_upload(server.port, 8 * 1024 * 1024) for _ in range(3)]
        try:
            # The server has read what was sent once it answers a request sent after it.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert httpx.get(server.url + "/healthz").status_code == 200
                time.sleep(0.2)
                if _process_io_read(server.process.pid) >= 3 * 8 * 1024 * 1024 - 3 * 1024:
                    break
            else:
                pytest.fail("the server did not read the uploads")
            assert _deleted_files_in(temp, [server.process.pid]) == 0
        finally:
            for connection in stalled:
                connection.close()
        png = encode_png(clear_digits[0][0])
        done = httpx.post(server.url + UPLOAD, files=_files(("a.png", png)))
        assert done.status_code == 200, done.text


def _process_io_read(pid: int) -> int:
    """Bytes the process has received from sockets and files (Linux /proc/PID/io rchar)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


def test_file_names_are_ids_capped_like_any_id(client: TestClient, clear_digits: Digits) -> None:
    png = encode_png(clear_digits[0][3])
    longest = "d" * (ID_MAX_LENGTH - 4) + ".png"
    accepted = client.post(UPLOAD, files=_files(("a.png", png), (longest, png)))
    assert accepted.status_code == 200, accepted.text
    assert [p["id"] for p in accepted.json()["predictions"]] == ["a.png", longest]

    too_long = "d" * ID_MAX_LENGTH + ".png"
    refused = client.post(UPLOAD, files=_files(("a.png", png), (too_long, png)))
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["index"] == 1 and "file 1's name" in error["message"]
    assert len(refused.text) < 1_000  # the name is not echoed in full
