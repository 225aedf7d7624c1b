"""Scoring against a running service: batches of files to `/v1/predict`, over HTTP.

503s (model loading, draining), gateway errors and connection failures are retried with
exponential backoff; an image the server rejects is reported on its own and the rest of
its batch is sent again without it. A batch over the server's images-per-request limit
is split to that limit, which the server publishes (`GET /v1/model`, `limits`). Needs only
httpx and tqdm (the `client` extra): nothing of the server.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from service.scoring.results import Result

RETRY_STATUSES = frozenset({429, 502, 503, 504})
Fields = dict[str, Any]  # a `Result`'s fields but the path


class RequestFailedError(Exception):
    """The server could not be reached, or kept answering 'try again', through every retry."""


class HttpScorer:
    """Scores batches of files; safe to call from many threads (one shared connection pool)."""

    def __init__(self, url: str, *, timeout: float, retries: int, backoff: float) -> None:
        self.endpoint = url.rstrip("/") + "/v1/predict"
        self.model_endpoint = url.rstrip("/") + "/v1/model"
        self.retries = retries
        self.backoff = backoff
        self.client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=64))
        self._max_images: int | None = None  # the server's limit, once it has told us
        self._asked = self._split = False
        self._limit_lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def score(self, paths: list[Path]) -> list[Result]:
        results: dict[int, Result] = {}
        items: list[tuple[int, str]] = []
        for position, path in enumerate(paths):
            try:
                items.append((position, base64.b64encode(path.read_bytes()).decode("ascii")))
            except OSError as error:
                results[position] = Result(str(path), error=f"cannot read: {error.strerror}")
        try:
            for position, fields in self._score_items(items):
                results[position] = Result(str(paths[position]), **fields)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
            # Not what a digits service answers (a proxy's page, another service...).
            problem = f"unexpected response: {type(error).__name__}: {error}"
            for position, _ in items:
                results.setdefault(position, Result(str(paths[position]), error=problem))
        return [results[position] for position in range(len(paths))]

    def _score_items(self, items: list[tuple[int, str]]) -> Iterator[tuple[int, Fields]]:
        limit = self.max_images()
        if limit is not None and len(items) > limit:
            self._say_split(limit)
            for start in range(0, len(items), limit):
                yield from self._score_items(items[start : start + limit])
            return
        while items:
            payload = {"images": [{"data": data} for _, data in items], "top_k": 1}
            try:
                response = self._request("POST", self.endpoint, json=payload)
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
                half = len(items) // 2  # a body over the limit: halve the batch until it fits
                yield from self._score_items(items[:half])
                yield from self._score_items(items[half:])
                return
            else:
                yield from ((position, {"error": message}) for position, _ in items)
                return

    def max_images(self) -> int | None:
        """The server's images-per-request limit, as `GET /v1/model` publishes it (asked
        once, for every thread); None from a server that does not say."""
        with self._limit_lock:
            if not self._asked:
                self._asked = True
                self._max_images = self._published_limit()
            return self._max_images

    def _published_limit(self) -> int | None:
        try:
            response = self._request("GET", self.model_endpoint)
            limit = response.json()["limits"]["max_images"] if response.is_success else None
        except (RequestFailedError, ValueError, KeyError, TypeError):
            return None  # an older server, or none: batches go as they are
        return limit if isinstance(limit, int) and limit >= 1 else None

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
