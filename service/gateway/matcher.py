"""Each request matched once against the table of operations, as pure ASGI.

The match is recorded in the request's scope (service/web/operation.py): the operation,
its rules and its path parameters. Every layer after this one reads the rules from there;
nothing else in the service looks at the URL. Exact paths are one dictionary lookup;
templated ones (`/v2/models/{model_name}/infer`) one regular expression each, tried in
table order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from service.web.operation import OPEN, Fallback, Operation, Rules, record, route_path


@dataclass
class _Path:
    """The operations of one path, by method, and the rules of the path for other methods
    (the 405 to come is refused or answered in the path's own shape)."""

    rules: Rules
    by_method: dict[str, Operation] = field(default_factory=dict)


class OperationTable:
    """The operations of the app, ready to match."""

    def __init__(self, operations: Sequence[Operation], fallbacks: Sequence[Fallback]) -> None:
        self.operations = tuple(operations)
        self._exact: dict[str, _Path] = {}
        self._templated: list[tuple[re.Pattern[str], _Path]] = []
        templates: dict[str, _Path] = {}
        for operation in operations:
            entries = self._exact if "{" not in operation.path else templates
            entry = entries.setdefault(operation.path, _Path(operation.rules))
            if operation.method in entry.by_method:
                raise ValueError(f"{operation.name} is declared twice")
            entry.by_method[operation.method] = operation
        for template, entry in templates.items():
            self._templated.append((compile_path(template)[0], entry))
        # Longest prefix first, so that `/v2/health` wins over `/v2`.
        self._fallbacks = sorted(fallbacks, key=lambda fallback: -len(fallback.prefix))

    def match(self, method: str, path: str) -> tuple[Operation | None, Rules, dict[str, str]]:
        """The operation for `method` and `path` (None if there is none), the rules the
        request is served under, and its path parameters."""
        entry = self._exact.get(path)
        params: dict[str, str] = {}
        if entry is None:
            for pattern, candidate in self._templated:
                found = pattern.match(path)
                if found is not None:
                    entry, params = candidate, found.groupdict()
                    break
        if entry is None:
            return None, self._fallback_rules(path), params
        operation = entry.by_method.get(method)
        return operation, entry.rules if operation is None else operation.rules, params

    def _fallback_rules(self, path: str) -> Rules:
        for fallback in self._fallbacks:
            prefix = fallback.prefix
            if path == prefix or path.startswith(prefix + "/"):
                return fallback.rules
        return OPEN


class MatchOperation:
    """Finds each HTTP request's operation, once, before any layer that needs its rules."""

    def __init__(self, app: ASGIApp, table: OperationTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            operation, rules, params = self.table.match(scope["method"], route_path(scope))
            record(scope, operation, rules)
            if params:
                scope["path_params"] = params
        await self.app(scope, receive, send)
