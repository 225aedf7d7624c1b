"""What a client may name, and how much of what it sent comes back: one rule for both APIs.

A client's ids (`/v1` image ids, upload file names, the `/v2` request id) are echoed in
answers, so they are capped at `ID_MAX_LENGTH` characters and refused beyond it (the
schemas say `maxLength`). Anything else a client chose that an error message quotes (a
tensor or model name, a datatype, a header) is cut to `ECHO_MAX_CHARS` with an ellipsis:
an error about a 1 MB name is a few hundred bytes, not 1 MB.
"""

from __future__ import annotations

from service.errors import InvalidRequestError

ID_MAX_LENGTH = 256
"""Most characters in a client's id (an image id, an upload's file name, a `/v2` id)."""

ECHO_MAX_CHARS = 64
"""Most characters of a client's text quoted in an error message."""


def clip(text: str, limit: int = ECHO_MAX_CHARS) -> str:
    """`text`, cut to `limit` characters with an ellipsis and the full length if longer."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def echo(value: object, limit: int = ECHO_MAX_CHARS) -> str:
    """`value` quoted as an error message shows it (its `repr`), at most `limit` characters
    of it; a long string is cut inside its quotes, so the cut is not mistaken for content."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    return clip(repr(value), limit + 2)


def checked_id(value: str | None, *, what: str = "id", index: int | None = None) -> str | None:
    """`value` if it is a usable id (at most `ID_MAX_LENGTH` characters), else 422 naming
    `what` (e.g. "file 2's name") and `index`; empty means no id.

    For ids that do not come through a schema, e.g. an upload's file name.
    """
    if not value:
        return None
    if len(value) > ID_MAX_LENGTH:
        raise InvalidRequestError(
            f"{what} is {len(value)} characters long; at most {ID_MAX_LENGTH} are accepted "
            f"({echo(value)})",
            index=index,
        )
    return value
