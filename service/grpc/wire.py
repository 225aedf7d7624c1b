"""A `ModelInferRequest`'s bytes, counted before they are parsed.

Parsing protobuf builds every element it meets, before any check can run: 30 MB of one-byte
`uint_contents` is 30 M values (+240 MiB and 0.4 s in upb, on the event loop), 30 MB of
empty `inputs {}` +1.2 GiB and 2 s. As REST counts a JSON body's values before parsing it
(service/web/json_body.py), the message's wire format is walked first: one step per field
(a valid request has a few, plus one per BYTES image), and the elements of packed repeated
fields counted from their bytes at C speed. A message holding more than a valid request of
`max_images` images can is refused unparsed, with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError

from service.grpc.proto import grpc_predict_v2_pb2 as pb
from service.runtime.limits import Limits
from service.v2.codec import JSON_VALUES_OVERHEAD, max_json_values
from service.web.errors import HttpError

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
# Bytes per element of a packed field of each fixed-size type; other scalars are varints.
_WIDTHS = {
    FieldDescriptor.TYPE_FLOAT: 4,
    FieldDescriptor.TYPE_FIXED32: 4,
    FieldDescriptor.TYPE_SFIXED32: 4,
    FieldDescriptor.TYPE_DOUBLE: 8,
    FieldDescriptor.TYPE_FIXED64: 8,
    FieldDescriptor.TYPE_SFIXED64: 8,
}
_STRINGS = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES)
_MAX_VARINT_BYTES = 10
_CONTINUATION_BYTES = bytes(range(0x80, 0x100))


class TooManyValuesError(HttpError):
    """More fields or values than any valid request holds (RESOURCE_EXHAUSTED over gRPC)."""

    status_code = 413
    code = "too_many_values"


class MalformedMessageError(HttpError):
    """Bytes that are not a `ModelInferRequest` (INVALID_ARGUMENT over gRPC)."""

    code = "invalid_message"


def max_fields(max_images: int) -> int:
    """The most fields a valid request holds: REST's allowance for ids, names, parameters
    and outputs, and one `bytes_contents` element per image. Typed pixels are one packed
    field (protobuf 3 packs repeated numbers), their elements counted as values; sent
    unpacked, each is a field, so more than ~6 images of them are refused."""
    return JSON_VALUES_OVERHEAD + max_images


def read_infer_request(data: bytes, limits: Limits) -> tuple[pb.ModelInferRequest, int]:
    """The message, parsed once its fields and values are within the bounds of a request of
    `limits.max_images` images; and at most how many values it holds (fields, elements)."""
    fields, values = max_fields(limits.max_images), max_json_values(limits.max_images)
    # Every field takes two bytes or more, every value one or more: a message this small
    # cannot exceed the bounds (single images are), and need not be walked.
    counted = len(data)
    if counted > min(2 * fields, values):
        counter = _Counter(fields, values)
        try:
            counter.walk(memoryview(data), 0, len(data), pb.ModelInferRequest.DESCRIPTOR)
        except _OverBudgetError as error:
            path = ".".join(reversed(error.path))
            raise TooManyValuesError(
                f"the request holds more than {error.bound} (at {path}), more than a valid "
                f"request of at most {limits.max_images} images"
            ) from None
        counted = counter.values
    try:
        return pb.ModelInferRequest.FromString(data), counted
    except DecodeError as error:  # e.g. a string that is not UTF-8
        message = f"the request is not a valid ModelInferRequest: {error}"
        raise MalformedMessageError(message) from None


class _Field(NamedTuple):
    name: str
    message: Descriptor | None  # a message (or map entry): walked
    packed: int | None  # a packed repeated scalar: bytes per element, 0 for varints
    repeated: bool


class _OverBudgetError(Exception):
    def __init__(self, bound: str, name: str) -> None:
        self.bound = bound
        self.path = [name]  # innermost first; each enclosing message adds its field


class _Counter:
    """Fields and values seen so far, against their bounds."""

    def __init__(self, max_fields: int, max_values: int) -> None:
        self.max_fields, self.max_values = max_fields, max_values
        self.fields = self.values = 0

    def walk(self, data: memoryview, pos: int, end: int, message: Descriptor) -> None:
        """Counts the fields of `data[pos:end]`, a `message`, and what they hold."""
        layout = _layout(message)
        seen: dict[int, int] = {}  # occurrences of each repeated field, for the path
        while pos < end:
            key, pos = _varint(data, pos, end)
            number, wire = key >> 3, key & 7
            field = layout.get(number)
            self.fields += 1
            self.values += 1
            if self.fields > self.max_fields or self.values > self.max_values:
                raise self._over(number, field)
            if wire == _VARINT:
                pos = _varint(data, pos, end)[1]
            elif wire in (_FIXED64, _FIXED32):
                pos += 8 if wire == _FIXED64 else 4
            elif wire != _LENGTH:  # groups (3, 4) are not protobuf 3; 6 and 7 do not exist
                raise MalformedMessageError(f"the request is not protobuf 3 (wire type {wire})")
            else:
                length, start = _varint(data, pos, end)
                pos = start + length
                if pos > end or field is None:
                    continue  # unknown: kept as bytes
                if field.message is not None:
                    index = seen[number] = seen.get(number, -1) + 1
                    try:
                        self.walk(data, start, pos, field.message)
                    except _OverBudgetError as error:
                        error.path.append(f"{field.name}.{index}" if field.repeated else field.name)
                        raise
                elif field.packed is not None:
                    left = self.max_values - self.values
                    self.values += _packed_count(data, start, pos, field.packed, left)
                    if self.values > self.max_values:
                        raise self._over(number, field)
        if pos != end:
            raise MalformedMessageError("the request is not a valid ModelInferRequest")

    def _over(self, number: int, field: _Field | None) -> _OverBudgetError:
        name = field.name if field is not None else f"field {number}"
        if self.fields > self.max_fields:
            return _OverBudgetError(f"{self.max_fields} fields", name)
        return _OverBudgetError(f"{self.max_values} values", name)


def _packed_count(data: memoryview, start: int, end: int, width: int, at_most: int) -> int:
    """The elements of a packed field in `data[start:end]`; more than `at_most` once it is
    sure there are (without counting them all)."""
    length = end - start
    if width:
        return length // width + (length % width > 0)
    if length > at_most * _MAX_VARINT_BYTES:  # surely more varints than that: each ≤ 10 bytes
        return at_most + 1
    # A varint's last byte is the one below 0x80: what is left once the others are deleted.
    return len(data[start:end].tobytes().translate(None, _CONTINUATION_BYTES))


def _varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    result = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise MalformedMessageError("the request is not a valid ModelInferRequest (a varint)")


@functools.cache
def _layout(message: Descriptor) -> dict[int, _Field]:
    """What the walk needs of each field, read once (descriptor attributes are slow)."""
    layout = {}
    for number, field in message.fields_by_number.items():
        packed = None
        if field.message_type is None and field.type not in _STRINGS and field.is_repeated:
            packed = _WIDTHS.get(field.type, 0)
        layout[number] = _Field(field.name, field.message_type, packed, field.is_repeated)
    return layout
