"""JSON request bodies, judged before they are parsed: UTF-8, and a bounded number of values.

A JSON parser turns every value into an object: 13 MB of `{"data":"A"},` is a million
dicts, ~700 MiB of Python objects and seconds of a blocked event loop, all built before
the schema could say "at most 256 images". Each API knows how many values a valid
request can hold (`/v1`: a few per image; `/v2`: one per pixel), so a body with more is
refused first, at memchr speed and without building anything: a JSON value needs a `,`
after the one before it, or opens a `[` or `{`, so those bytes bound the number of values
(bytes inside strings count too, an overcount that the budgets allow for).

Encoding: UTF-8 only, as RFC 8259 §8.1 requires of JSON exchanged between systems, for
both APIs (`/v1` used to take UTF-16/32, `/v2` never did); a leading UTF-8 byte order mark
is ignored, which the RFC allows (Windows PowerShell writes one).
"""

from __future__ import annotations

import anyio.to_thread

UTF8_BOM = b"\xef\xbb\xbf"
# Bodies up to this size are checked on the event loop (a few ms at most); larger ones in
# a worker thread, chunk by chunk, so that the loop gets the GIL between chunks.
INLINE_BYTES = 1024 * 1024
CHUNK_BYTES = 1024 * 1024
_WIDE_BOMS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)


class JsonBodyError(ValueError):
    """A JSON body refused before parsing; each API reports it in its own shape."""


class TooManyJsonValuesError(JsonBodyError):
    """More JSON values than any valid request holds."""


def json_values_bound(body: bytes, stop_above: int) -> int:
    """An upper bound on the JSON values in `body`; counting stops once over `stop_above`."""
    if len(body) <= CHUNK_BYTES:  # the common case, in a few hundred nanoseconds
        return body.count(b",") + body.count(b"[") + body.count(b"{") + 1
    count = 0
    for start in range(0, len(body), CHUNK_BYTES):
        end = start + CHUNK_BYTES
        count += body.count(b",", start, end) + body.count(b"[", start, end)
        count += body.count(b"{", start, end)
        if count > stop_above:
            break
    return count + 1  # the top-level value


def check_json_body(body: bytes, max_values: int) -> memoryview:
    """The JSON text of `body` (without a UTF-8 BOM), or `JsonBodyError` if it is not UTF-8
    or holds more than `max_values` values."""
    wide = _wide_encoding(body[:4])
    if wide is not None:
        raise JsonBodyError(f"the body is {wide}-encoded; JSON must be sent as UTF-8 (RFC 8259)")
    if not body.isascii():  # cheap; only text with non-ASCII characters pays for a decode
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonBodyError(
                f"the body is not valid UTF-8 (byte {error.start}); JSON must be sent as UTF-8"
            ) from None
    if json_values_bound(body, max_values) > max_values:
        raise TooManyJsonValuesError(
            f"the body holds more than {max_values} JSON values, more than any valid request"
        )
    text = memoryview(body)
    return text[len(UTF8_BOM) :] if body.startswith(UTF8_BOM) else text


async def check_json_body_async(body: bytes, max_values: int) -> memoryview:
    """`check_json_body` without holding the event loop for long (see `INLINE_BYTES`)."""
    if len(body) <= INLINE_BYTES:
        return check_json_body(body, max_values)
    return await anyio.to_thread.run_sync(check_json_body, body, max_values)


def _wide_encoding(start: bytes) -> str | None:
    """UTF-16 or UTF-32, told by a byte order mark or by the zero bytes that ASCII
    characters (every JSON text starts with one) have in them (RFC 4627 §3)."""
    if b"\x00" not in start and not start.startswith((b"\xfe", b"\xff")):
        return None  # UTF-8 (or no JSON at all, which the parser will say)
    for bom, name in _WIDE_BOMS:
        if start.startswith(bom):
            return name
    if b"\x00" not in start:
        return None
    return "UTF-32" if start.count(0) >= 3 else "UTF-16"
