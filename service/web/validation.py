"""A pydantic validation failure as one error message, naming the offending image: the
same words whether FastAPI validated the body (service/web/handlers.py) or an endpoint
of the gateway did (service/api/predict.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from service.errors import InvalidRequestError
from service.web.bounds import clip

BODY_REQUIRED = "request body is required (a JSON object)"

M = TypeVar("M", bound=BaseModel)


def validation_message(errors: Sequence[Any]) -> tuple[str, int | None]:
    """The message for pydantic's (or FastAPI's) error list, and the image it names."""
    first = errors[0]
    location = list(first["loc"])
    if location[:1] == ["body"]:
        location = location[1:]
    if first["type"] == "json_invalid":
        message = f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}"
    elif not location and first["type"] == "missing":
        message = BODY_REQUIRED
    else:
        # Cut: a location can hold a client's key (an unknown field) of any length.
        where = clip(".".join(str(part) for part in location)) or "request body"
        message = f"{where}: {first['msg']}"
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    # Errors inside one image name it, like errors found while decoding it.
    index = location[1] if len(location) > 1 and location[0] == "images" else None
    return message, index if isinstance(index, int) else None


def validate_json(model: type[M], text: bytes) -> M:
    """`model` from a JSON body, validated in pydantic's JSON mode (in Rust, with no Python
    objects in between); an `InvalidRequestError` worded as `validation_message` words it."""
    if not text:
        raise InvalidRequestError(BODY_REQUIRED)
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        message, index = validation_message(_python_errors(model, text) or error.errors())
        raise InvalidRequestError(message, index=index) from None


def _python_errors(model: type[BaseModel], text: bytes) -> list[Any] | None:
    """What FastAPI's Python-mode validation says of a body the JSON mode refused: the
    words (`a valid list`, Python's JSON errors) that clients have always been given. Only
    refused bodies pay for it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return [{"type": "json_invalid", "loc": (), "msg": "", "ctx": {"error": error.msg}}]
    except ValueError:
        return None
    try:
        model.model_validate(value, from_attributes=True)  # as FastAPI validates bodies
    except ValidationError as error:
        return error.errors(include_url=False)
    return None  # refused in JSON mode only: its own words
