"""Multipart forms, parsed in memory and read as strictly as a JSON body.

In memory, never in /tmp: Starlette spools each file over 1 MiB to a temporary file,
and a client that stalls mid-upload keeps it there until the request times out. The
Kubernetes pod's /tmp is a 64 MiB `emptyDir` (a pod over it is evicted): three stalled
30 MB uploads held 90 MB of deleted temp files for 15 s. In memory, an upload costs
what the same bytes sent as a JSON body cost, and the same bound holds:
`DIGITS_MAX_BODY_BYTES` per request (BodySizeLimit stops the stream past it).

Strict: form fields are text, and FastAPI reads them leniently (`top_k=3.0`, `" 3 "`,
`return_preprocessed=yes` were accepted) while the JSON body is strict. Here a field's
text must spell the JSON value: a number as JSON writes it (`3`, `0.25`, `1e-2`; not
`" 3 "`, `+3`, `03` or `.5`), a boolean as `true` or `false` in any case (clients generated
from the OpenAPI document send Python's `True`/`False`; `yes`, `on` or `1` are refused).
A field then takes what the same JSON value would give it: `top_k=3.0` is a float, which
an integer field refuses as JSON's `"top_k": 3.0` is refused. Any other text stays text,
and the model's strict fields refuse it with the error a JSON body gets for `"top_k": "3"`.
Unknown fields are refused too, as in JSON: a misspelt `topk` must not pass silently.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from service.errors import InvalidRequestError

Model = TypeVar("Model", bound=BaseModel)

# JSON's number grammar (no plus, leading zeros or spaces; at most 18 digits before the
# point, 24 after it (a float's shortest repr, 17 digits, can follow three zeros there:
# 0.00012345678901234567) and a 3-digit exponent, far past any limit, so that no huge
# number is converted) and its two booleans, in any case.
_JSON_SCALAR = re.compile(
    r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,24})?(?:e[+-]?[0-9]{1,3})?|true|false", re.IGNORECASE
)


class _InMemoryParser(MultiPartParser):
    # SpooledTemporaryFile's "never roll over to disk"; the body limit bounds the size.
    spool_max_size = 0


def json_scalar(value: object) -> object:
    """A form field's text as the JSON value it spells ('3' → 3, '0.5' → 0.5, 'true' or 'True'
    → True), for a strict field to judge; other text (' 3 ', '+3', 'yes') is left as text,
    which it refuses."""
    if isinstance(value, str) and _JSON_SCALAR.fullmatch(value):
        return json.loads(value.lower())
    return value


def strict_form(model: type[Model]) -> Callable[[Request], AsyncIterator[Model]]:
    """A FastAPI dependency: the request's multipart form as `model` (its files closed after
    the response). Errors are the JSON body's: 422 `invalid_request` naming the field."""
    list_fields = {
        name
        for name, field in model.model_fields.items()
        if typing.get_origin(field.annotation) is list
    }

    async def read(request: Request) -> AsyncIterator[Model]:
        form = await _parse(request)
        try:
            fields: dict[str, Any] = {}
            for name in form:
                values = form.getlist(name)
                # A repeated single-valued field stays a list, which the field refuses.
                fields[name] = values if name in list_fields or len(values) > 1 else values[0]
            try:
                parsed = model.model_validate(fields)
            except ValidationError as error:
                raise RequestValidationError(error.errors(include_url=False)) from None
            yield parsed
        finally:
            await form.close()

    return read


async def _parse(request: Request) -> FormData:
    parser = _InMemoryParser(request.headers, request.stream())
    try:
        return await parser.parse()
    except MultiPartException as error:
        raise InvalidRequestError(f"request body: {error.message}") from None
    except ClientDisconnect:
        message = "request body: the client disconnected while sending it"
        raise InvalidRequestError(message) from None
