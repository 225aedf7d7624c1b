"""Scoring against a running service: batches of files to `/v1/predict`, over HTTP.

503s (model loading, draining), gateway errors and connection failures are retried with
exponential backoff; an image the server rejects is reported on its own and the rest of
its batch is sent again without it. Batches are sent in requests within the limits the
server publishes (`GET /v1/model`, `limits`: images per request, body bytes), and a file
the body limit cannot hold is refused before it is read. Needs only httpx and tqdm (the
`client` extra): nothing of the server.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from service.scoring.reading import FileLimit, FileRefusedError, file_size, option_limit, read_file
from service.scoring.results import Result

RETRY_STATUSES = frozenset({429, 502, 503, 504})
Fields = dict[str, Any]  # a `Result`'s fields but the path
_JSON = {"content-type": "application/json"}
Item = tuple[int, bytes]  # a file's position in its batch, and its bytes base64-encoded
# A request body is this JSON, written here: its size is known before it is built.
_HEAD, _SEPARATOR, _TAIL = b'{"top_k":1,"images":[', b",", b"]}"
_IMAGE_HEAD, _IMAGE_TAIL = b'{"data":"', b'"}'
_PER_IMAGE = len(_SEPARATOR + _IMAGE_HEAD + _IMAGE_TAIL)


class RequestFailedError(Exception):
    """The server could not be reached, or kept answering 'try again', through every retry."""


@dataclass(frozen=True)
class ServerLimits:
    """What the server says one request may hold (`GET /v1/model`, `limits`); None: not said."""

    max_images: int | None = None
    max_body_bytes: int | None = None


class HttpScorer:
    """Scores batches of files; safe to call from many threads (one shared connection pool).

    Files are sized before they are read: one the server's body limit cannot hold is an
    error row, never read (a 300 MB file took this client to 1.2 GiB, for a 413), and
    a batch is sent in requests that fit the body limit and the images-per-request limit."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
        max_file_bytes: int | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/v1/predict"
        self.model_endpoint = url.rstrip("/") + "/v1/model"
        self.retries = retries
        self.backoff = backoff
        self.max_file_bytes = max_file_bytes  # --max-file-bytes; None: the server's limit
        self.client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=64))
        self._limits: ServerLimits | None = None  # asked once, for every thread
        self._split = False
        self._limit_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def score(self, paths: list[Path]) -> list[Result]:
        limit = self.file_limit()
        results: dict[int, Result] = {}
        sizes: list[tuple[int, int]] = []
        for position, path in enumerate(paths):
            try:
                sizes.append((position, file_size(path, limit)))
            except FileRefusedError as error:
                results[position] = Result(str(path), error=str(error))
        for group in self._groups(sizes):
            results.update(self._score_group([(p, paths[p]) for p in group], limit))
        return [results[position] for position in range(len(paths))]

    def file_limit(self) -> FileLimit:
        """The largest file worth reading: what the server's body limit holds once
        base64-encoded (or `--max-file-bytes` if smaller, or set against a server that
        does not say)."""
        body = self.limits().max_body_bytes
        fits = None if body is None else (body - len(_HEAD + _TAIL) - _PER_IMAGE) // 4 * 3
        if fits is not None and (self.max_file_bytes is None or fits <= self.max_file_bytes):
            return FileLimit(
                max(fits, 0),
                f"what the server's body limit, DIGITS_MAX_BODY_BYTES={body}, holds "
                "base64-encoded: raise it on the server",
            )
        return option_limit(self.max_file_bytes)

    def _groups(self, sizes: list[tuple[int, int]]) -> Iterator[list[int]]:
        """Positions in requests within the server's limits, in order: at most
        `max_images` each, and bodies within `max_body_bytes` (no 413 to learn it from)."""
        limits = self.limits()
        group: list[int] = []
        body = len(_HEAD + _TAIL)
        for position, size in sizes:
            encoded = _PER_IMAGE + 4 * -(-size // 3)
            full = limits.max_images is not None and len(group) >= limits.max_images
            if full:
                self._say_split(limits.max_images or 0)
            too_big = limits.max_body_bytes is not None and body + encoded > limits.max_body_bytes
            if group and (full or too_big):
                yield group
                group, body = [], len(_HEAD + _TAIL)
            group.append(position)
            body += encoded
        if group:
            yield group

    def _score_group(self, files: list[tuple[int, Path]], limit: FileLimit) -> dict[int, Result]:
        results: dict[int, Result] = {}
        items: list[Item] = []
        for position, path in files:
            try:
                items.append((position, base64.b64encode(read_file(path, limit))))
            except FileRefusedError as error:
                results[position] = Result(str(path), error=str(error))
        names = dict(files)
        try:
            for position, fields in self._score_items(items):
                results[position] = Result(str(names[position]), **fields)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            # Not what a digits service answers (a proxy's page, another service...).
            problem = f"unexpected response: {type(error).__name__}: {error}"
            for position, _ in items:
                results.setdefault(position, Result(str(names[position]), error=problem))
        return results

    def _score_items(self, items: list[Item]) -> Iterator[tuple[int, Fields]]:
        while items:
            try:
                response = self._request("POST", self.endpoint, content=_body(items), headers=_JSON)
            except RequestFailedError as error:
                yield from ((position, {"error": str(error)}) for position, _ in items)
                return
            if response.status_code == 200:
                predictions = response.json()["predictions"]
                for (position, _), prediction in zip(items, predictions, strict=True):
                    yield position, _scored(prediction)
                return
            message, index = _error_of(response)
            if response.status_code == 422 and index is not None and 0 <= index < len(items):
                # One bad image: report it, send the others again.
                yield items.pop(index)[0], {"error": message}
            elif response.status_code == 413 and len(items) > 1:
                # Over the body limit of a server that does not publish it: halve the batch.
                half = len(items) // 2
                yield from self._score_items(items[:half])
                yield from self._score_items(items[half:])
                return
            else:
                yield from ((position, {"error": message}) for position, _ in items)
                return

    def max_images(self) -> int | None:
        """The server's images-per-request limit; None from a server that does not say."""
        return self.limits().max_images

    def limits(self) -> ServerLimits:
        """The limits `GET /v1/model` publishes (asked once, for every thread); none from
        an older server, or none at all."""
        with self._limit_lock:
            if self._limits is None:
                self._limits = self._published_limits()
            return self._limits

    def _published_limits(self) -> ServerLimits:
        try:
            response = self._request("GET", self.model_endpoint)
            limits = response.json()["limits"] if response.is_success else {}
            values = {name: limits.get(name) for name in ("max_images", "max_body_bytes")}
        except (RequestFailedError, ValueError, KeyError, TypeError, AttributeError):
            return ServerLimits()  # an older server, or none: batches go as they are
        return ServerLimits(
            **{k: v if isinstance(v, int) and v >= 1 else None for k, v in values.items()}
        )

    def _say_split(self, limit: int) -> None:
        with self._limit_lock:
            if self._split:
                return
            self._split = True
        # tqdm.write: printed above any progress bar, not through it.
        tqdm.write(
            f"digits-score: the server takes at most {limit} images per request; "
            f"sending batches of {limit}",
            file=sys.stderr,
        )

    def _request(self, method: str, url: str, **options: Any) -> httpx.Response:
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            try:
                response = self.client.request(method, url, **options)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            problem = f"HTTP {response.status_code}: {_error_of(response)[0]}"
        raise RequestFailedError(f"gave up after {self.retries + 1} attempts; last: {problem}")


def _body(items: list[Item]) -> bytes:
    """`{"top_k":1,"images":[{"data":"..."},...]}`, joined once: the encoded images are the
    body's only other copy (json.dumps made two more, of the whole body)."""
    parts = [_HEAD]
    for number, (_, data) in enumerate(items):
        parts += (
            [_SEPARATOR, _IMAGE_HEAD, data, _IMAGE_TAIL]
            if number
            else [_IMAGE_HEAD, data, _IMAGE_TAIL]
        )
    parts.append(_TAIL)
    return b"".join(parts)


def _scored(prediction: dict[str, Any]) -> Fields:
    """A prediction's fields; a server without the not-a-digit fields (older) or whose
    model lacks the output (`not_a_digit` null) leaves both empty, as `--local` does."""
    not_a_digit = prediction.get("not_a_digit")
    return {
        "digit": prediction["digit"],
        "confidence": prediction["confidence"],
        "is_digit": None if not_a_digit is None else prediction["is_digit"],
        "not_a_digit": not_a_digit,
    }


def _error_of(response: httpx.Response) -> tuple[str, int | None]:
    """The server's message and the offending image's index, from any error body."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}", None
    if isinstance(error, dict):
        index = error.get("index")
        return str(error.get("message")), index if isinstance(index, int) else None
    return str(error), None
