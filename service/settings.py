"""Every knob of the service, read from `DIGITS_*` environment variables.

One class, one docstring per field: the README's settings table is generated
from these docstrings, so keep them short, user-facing and accurate.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.model_card import DEFAULT_NOT_A_DIGIT_THRESHOLD

# Where a source checkout keeps its models: <repo>/models, next to <repo>/service.
_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent

logger = logging.getLogger(__name__)

# Settings that were documented once and then removed. An unknown `DIGITS_*` variable is
# otherwise ignored in silence, and a deployment that still sets one deserves to hear it.
REMOVED_SETTINGS = {
    "DIGITS_BATCH_MAX_WAIT_MS": (
        "it never had an effect and was removed (issue 10): a micro-batch starts at the "
        "next event-loop turn"
    ),
}

# Decoded pixels (width × height) allowed per image by default: a digit needs far fewer,
# but phones send photos unscaled; this fits their usual 12-megapixel pictures (4032×3024,
# 4080×3072) and 16-megapixel ones (4608×3456). Memory per image grows with it
# (service/imaging/decode.py: DECODE_BYTES_PER_PIXEL).
DEFAULT_MAX_PIXELS = 16_000_000

LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]


class Settings(BaseSettings):
    """Configuration of the inference service (environment prefix `DIGITS_`)."""

    model_config = SettingsConfigDict(
        env_prefix="DIGITS_",
        extra="ignore",
        frozen=True,
        protected_namespaces=(),
    )

    model_card: Path = Path("models/model.json")
    """Path of the model card (`model.json`). A relative path is looked up in the working
    directory first (`/app` in the container), then in the source checkout the service runs
    from. The model files it lists are read from the card's folder."""

    model_file: str | None = None
    """Serve this `.tflite` file (one of the card's artifacts, e.g. `mnist_cnn_int8.tflite`)
    instead of the card's `serving_default`."""

    not_a_digit_threshold: float = Field(default=DEFAULT_NOT_A_DIGIT_THRESHOLD, gt=0, le=1)
    """An image is answered as not a digit (`is_digit` false) when the model's calibrated
    not-a-digit probability is at least this; a request may choose its own
    (`not_a_digit_threshold`). Lower refuses more non-digits and more real digits. Models
    without the not-a-digit output answer every image as a digit."""

    max_images: int = Field(default=256, ge=1)
    """Most images accepted in one `/v1/predict` request."""

    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request body in bytes; bigger requests get 413 before they are read. The
    default fits `max_images` base64-encoded images of up to ~96 KiB each."""

    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    """Largest decoded image, in pixels (width × height); bigger images, including
    decompression bombs, are rejected with 422. The default fits 16-megapixel photos; decoding
    one image takes up to 13 bytes per pixel at peak (README, Hardening)."""

    decode_threads: int = Field(default=4, ge=1, le=256)
    """Most images decoded at the same time, across all requests. Bounds memory: each may take
    up to 13 bytes × `max_pixels` while it is decoded (README, Hardening)."""

    interpreters: int = Field(default=2, ge=1, le=64)
    """LiteRT interpreters per process: the event loop's own, the rest lent to worker
    threads one at a time (a thread waits while all are lent). LiteRT holds the GIL while
    it runs, so a process infers one batch at a time however many it has: more cores
    need more `workers`, not more interpreters."""

    interpreter_threads: int = Field(default=1, ge=1, le=64)
    """CPU threads each interpreter uses for one inference."""

    workers: int = Field(default=0, ge=0, le=64)
    """Server processes sharing the port, each with its own interpreters; 0 means one per
    CPU core available to the process. The model is verified once, before they fork."""

    batching: bool = True
    """Dynamic micro-batching: small single-image requests that arrive together share one
    interpreter call, started at the next event-loop turn (never held back on a timer); on a
    quiet server a lone request runs at once. Under load the server then works in bursts:
    at concurrency 64, 221 instead of 343 µs of CPU per request (README, Performance)."""

    batch_max_size: int = Field(default=32, ge=1, le=1024)
    """Most images in one micro-batch."""

    inline_max_bytes: int = Field(default=16384, ge=0)
    """Single-image requests whose base64 image is at most this long (and declares at most
    128×128 pixels) are decoded and run on the event loop, cheaper than a hop to a worker
    thread; others in threads."""

    host: str = "0.0.0.0"
    """Address the HTTP server binds to."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port the HTTP server listens on."""

    grpc_port: int = Field(default=0, ge=0, le=65535)
    """TCP port of the gRPC Open Inference Protocol server (`inference.GRPCInferenceService`
    and `grpc.health.v1`), on `host`, beside HTTP in the same processes; 0 turns it off."""

    log_level: LogLevel = "info"
    """Log level of the service and of uvicorn."""

    access_log: bool = False
    """Log one line per HTTP request (uvicorn's access log). Off by default: formatting and
    writing it took ~25 % of the CPU of a single-image prediction (README, Performance);
    counts, statuses and latencies per route are in `/metrics`."""

    root_path: str = ""
    """URL prefix under which a reverse proxy serves the API (for the links in `/docs`)."""

    drain_seconds: float = Field(default=5.0, ge=0, le=300)
    """On SIGTERM, keep serving this long while `/readyz` answers 503, so the load balancer
    stops sending traffic before the port closes; then finish in-flight requests and exit 0."""

    shutdown_timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    """After the drain, how long in-flight requests may still take before they are cancelled.
    Keep `drain_seconds` + this below the orchestrator's grace period."""

    request_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    """A request that has not started its response after this long gets 504 (408 if the
    client is still sending the body)."""

    max_header_bytes: int = Field(default=16384, ge=1024, le=1024 * 1024)
    """Largest request head (request line and headers), in bytes; a bigger one gets 431
    and its connection is closed."""

    header_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    """A connection must send a complete request head within this long of connecting, and of
    the first byte of each later request: else it gets 408 (or, if it sent nothing, is
    closed)."""

    keep_alive_seconds: float = Field(default=75.0, gt=0, le=3600)
    """An idle keep-alive connection is closed after this long without a request. Longer
    than clients' and load balancers' own idle timeouts (httpx 5 s, aiohttp 15 s, AWS ALB
    60 s), so that they close first: a server that closes first races the client's next
    request, which then fails. nginx's default."""

    max_connections: int = Field(default=1000, ge=1, le=100_000)
    """Most open connections per worker process; one more gets 503 with `Retry-After`, as
    soon as it is accepted, and is closed. Keep it below the open-files limit (`ulimit -n`)."""

    max_body_bytes_in_flight: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Most request-body bytes one worker process holds at once, over all its connections
    (bodies being received or parsed); a request whose body would take it past this gets 503
    `overloaded` with `Retry-After` before its body is read (a request is always taken when
    no other body is in flight, and so is a body of at most 64 KiB). 64 MiB is two bodies at
    `DIGITS_MAX_BODY_BYTES`, as the image queue's 512 is two full batches (a third would be
    shed once parsed): eight 31 MiB JSON bodies at once then peak at +173 MiB, which with the
    image decodes (~500 MiB) keeps a worker within the Deployment's 768 MiB memory limit; at
    128 MiB, up to +293 MiB."""

    worker_heartbeat_seconds: float = Field(default=30.0, ge=0, le=3600)
    """A worker process whose event loop does not answer the supervisor's heartbeat for this
    long (stopped, or stuck in C code) is killed and replaced, and the supervisor logs why;
    0 turns the check off. gunicorn's `--timeout` default."""

    worker_restart_limit: int = Field(default=5, ge=0, le=100)
    """Worker processes that may die (and are replaced) within 60 s; one more, and the server
    stops, draining the others, with exit status 1 so that the orchestrator restarts it."""

    max_queued_images: int = Field(default=512, ge=0)
    """Most images one worker process takes on at once (decoding, queued or running); a
    prediction request past it gets 503 `overloaded` with `Retry-After` before any image is
    decoded (a request is always taken when the worker is idle). 512 is ~0.3 s of 28×28
    PNGs, ~1.5 s of 300-pixel photos on one AMD EPYC core (README); 0 means no limit."""

    api_key: SecretStr | None = None
    """When set, `/v1/*` and `/v2/*` need `Authorization: Bearer <key>` or `X-API-Key: <key>`
    (401 otherwise); health checks, metrics, docs and the web page stay open. Set but empty
    (e.g. from an empty secret), the server refuses to start."""

    @field_validator("model_file", mode="before")
    @classmethod
    def _empty_means_default(cls, value: object) -> object:
        # `DIGITS_MODEL_FILE=` (set but empty) is how a compose file "unsets" a variable.
        return None if value == "" else value

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, value: SecretStr | None) -> SecretStr | None:
        # Set but empty (an empty Kubernetes secret) once meant "no auth", in silence: a
        # deployment that asked for a key must not start open. Whitespace around a key (a
        # key file's newline) cannot arrive in a header, so nobody could ever authenticate.
        key = None if value is None else value.get_secret_value()
        if key is not None and not key.strip():
            raise ValueError("is set but empty; set a key, or unset the variable to turn auth off")
        if key is not None and (key != key.strip() or not key.isprintable()):
            raise ValueError(
                "has whitespace around it or control characters (a newline from a file?), "
                "which no HTTP header can carry"
            )
        return value

    def model_post_init(self, context: Any, /) -> None:
        for name, why in REMOVED_SETTINGS.items():
            if name in os.environ:
                logger.warning("%s is set, but %s; ignoring it", name, why)

    def model_card_path(self) -> Path:
        """The card to load: `model_card`, resolved as its docstring describes."""
        path = self.model_card.expanduser()
        if path.is_absolute() or path.exists():
            return path
        in_checkout = _CHECKOUT_ROOT / path
        return in_checkout if in_checkout.exists() else path
