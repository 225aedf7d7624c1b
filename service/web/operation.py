"""What the gateway found a request to be: its operation, and the rules it is served under.

The table of operations (service/gateway/table.py) declares every route once, with its
rules; the gateway matches each request against it once (service/gateway/matcher.py) and
records the result in the request's scope. Every layer after it reads the rules from
there, through `rules_of`: the API key check, load shedding, the body limit, the error
shape. None of them looks at the URL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from starlette.requests import Request
from starlette.types import ASGIApp, Scope

if TYPE_CHECKING:
    from service.runtime.recognizer import Recognizer

Protocol = Literal["v1", "v2"]
"""Whose error shape a refusal takes: `v1`, digits' own (every route outside `/v2`), or
`v2`, the Open Inference Protocol's flat `{"error": "..."}`."""

Dependency = Callable[[Request], Awaitable[None]]
"""A check an operation runs before its endpoint, for every request (service/gateway):
it sees the request's head (method, path, headers, query), never its body, and refuses
by raising a `DigitsError` (or an `HttpError` with its own status)."""

Endpoint = Callable[["Recognizer"], ASGIApp]
"""Builds an operation's own ASGI endpoint around the app's recognizer."""


@dataclass(frozen=True, slots=True)
class Rules:
    """How the layers treat a request, whatever answers it."""

    protocol: Protocol = "v1"
    needs_key: bool = False
    """Refused with 401 unless it carries `DIGITS_API_KEY` (when one is set)."""
    sheddable: bool = False
    """Refused with 503 `overloaded` before its body is read while the process is at
    `DIGITS_MAX_QUEUED_IMAGES`. Probes, metrics and metadata never are."""
    max_body_bytes: int | None = None
    """Its body limit in bytes (413 beyond it); None: `DIGITS_MAX_BODY_BYTES`."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One route: its method and path template (as FastAPI spells it), its rules, and what
    answers it: its own `endpoint`, or, with none, the framework (FastAPI's route)."""

    method: str
    path: str
    rules: Rules
    endpoint: Endpoint | None = None
    dependencies: tuple[Dependency, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True, slots=True)
class Fallback:
    """Rules for requests under `prefix` that match no operation (a 404 or 405 to come):
    a guessed `/v2/...` URL is still refused in the protocol's shape, and `/v1/...` ones
    still need the key, so that probing for routes tells an outsider nothing."""

    prefix: str
    rules: Rules


OPEN = Rules()
"""The rules of a request that nothing in the table names."""

_OPERATION = "digits.operation"
_RULES = "digits.rules"


def operation_of(scope: Scope) -> Operation | None:
    """The operation the gateway matched, or None (no route: a 404 or 405 follows)."""
    operation: Operation | None = scope.get(_OPERATION)
    return operation


def rules_of(scope: Scope) -> Rules:
    """The rules the request is served under; `OPEN` for one the gateway has not seen."""
    rules: Rules = scope.get(_RULES, OPEN)
    return rules


def record(scope: Scope, operation: Operation | None, rules: Rules) -> None:
    """The gateway's finding, written once into the request's scope."""
    scope[_OPERATION] = operation
    scope[_RULES] = rules


def route_path(scope: Scope) -> str:
    """The request path as routes see it: below the proxy prefix (`root_path`), if any."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
