"""Open Inference Protocol tensors: request bodies → images (outputs: service/v2/outputs.py).

Both encodings of the protocol are handled: plain JSON, and the binary tensor data
extension (a JSON header of `Inference-Header-Content-Length` bytes, then the raw
tensors back to back), which is what `tritonclient` sends and asks for by default.
Everything a client can get wrong becomes a `TensorError` (400) naming the tensor.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Collection
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from service.imaging.decode import decode_base64_image
from service.model_card import IMAGE_SIDE
from service.runtime.limits import Limits, TooManyImagesError
from service.v2.schemas import InferRequest, Parameters, RequestInput
from service.web.bounds import ID_MAX_LENGTH, clip, echo
from service.web.errors import HttpError

HEADER_LENGTH = "Inference-Header-Content-Length"
THRESHOLD_PARAMETER = "not_a_digit_threshold"
# One image per row of the batch, as the model's own (28, 28, 1), without the
# channel, or flattened like most MNIST tutorials keep it.
PIXEL_SHAPES = ((IMAGE_SIDE, IMAGE_SIDE), (IMAGE_SIDE, IMAGE_SIDE, 1), (IMAGE_SIDE * IMAGE_SIDE,))
# Little-endian, as the binary extension specifies.
_PIXEL_DTYPES: dict[str, np.dtype[Any]] = {"UINT8": np.dtype("<u1"), "FP32": np.dtype("<f4")}
# A BYTES element made only of these is base64 text, not an image file: PNG, JPEG,
# GIF, BMP, WebP and TIFF files all start with bytes outside this alphabet.
_BASE64_TEXT = re.compile(rb"(data:[^,]*;base64,)?[A-Za-z0-9+/=\-_\s]+")
# The most JSON values (service/web/json_body.py) one image of a valid request holds: a
# pixel each and its comma, nested as deep as [N, 28, 28, 1] allows; plus a margin for
# the rest (ids, names, parameters, outputs).
JSON_VALUES_PER_IMAGE = 2 * (IMAGE_SIDE * IMAGE_SIDE + IMAGE_SIDE + 1)
JSON_VALUES_OVERHEAD = 4096 + 2 * ID_MAX_LENGTH
_END = object()


class TensorError(HttpError):
    """A request the protocol or this model cannot take: 400, as the protocol says."""

    status_code = 400
    code = "invalid_tensor"


EncodedImage = bytes | str
"""An image file: its raw bytes, or base64 text (`image_bytes` reads either)."""
Images = np.ndarray | list[EncodedImage]
"""(N, 28, 28) float32 pixels in [0, 1], or N encoded image files."""


def max_json_values(max_images: int) -> int:
    """The most JSON values a valid request of up to `max_images` images holds."""
    return max_images * JSON_VALUES_PER_IMAGE + JSON_VALUES_OVERHEAD


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary tensor data after it (none without a header length)."""
    header, binary = body, b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise TensorError(f"{HEADER_LENGTH} is not an integer: {echo(header_length)}") from None
        if not 0 <= length <= len(body):
            raise TensorError(f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes")
        header, binary = body[:length], body[length:]
    return header, binary


def read_request(
    header: bytes | memoryview, binary: bytes, outputs: Collection[str]
) -> tuple[InferRequest, bytes | None]:
    """The request, and the binary data of its input when it came as binary tensor data;
    `outputs` are the model's (service/v2/outputs.py: `model_outputs`).

    `header` is JSON already judged by `check_json_body` (service/web/json_body.py) against
    `max_json_values`: no more values than a valid request holds are built here.
    """
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        raise TensorError(f"the inference request is not valid JSON: {error}") from None
    try:
        request = InferRequest.model_validate(document)
    except ValidationError as error:
        raise TensorError(_validation_message(error)) from None
    return check_request(request, binary, outputs)


def check_request(
    request: InferRequest, binary: bytes, outputs: Collection[str]
) -> tuple[InferRequest, bytes | None]:
    """What any encoding of a request must satisfy (REST here, gRPC in service/grpc): one
    input, outputs among the model's `outputs`, valid parameters; returns it with its
    input's binary data, if it has binary data."""
    if len(request.inputs) != 1:
        names = clip(", ".join(repr(tensor.name) for tensor in request.inputs)) or "none"
        raise TensorError(f"the model takes exactly one input tensor (the images); got {names}")
    for output in request.outputs or ():
        if output.name not in outputs:
            known = ", ".join(outputs)
            raise TensorError(f"unknown output {output.name!r}; the model's outputs are {known}")
        if (output.parameters or {}).get("classification") is not None:
            raise TensorError("the classification extension is not supported")
        _flag(output.parameters, "binary_data", default=False)
    _flag(request.parameters, "binary_data_output", default=False)
    not_a_digit_threshold(request.parameters, default=1.0)  # refused now, before inference

    (tensor,) = request.inputs
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is None:
        if binary:
            raise TensorError(f"{len(binary)} bytes of binary data but no binary_data_size")
        if tensor.data is None:
            raise TensorError(f"input {tensor.name!r} has neither data nor binary_data_size")
        return request, None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise TensorError(f"input {tensor.name!r}: binary_data_size must be a whole number")
    if tensor.data is not None:
        raise TensorError(f"input {tensor.name!r} has both data and binary_data_size")
    if size != len(binary):
        raise TensorError(
            f"input {tensor.name!r}: binary_data_size is {size}, "
            f"but {len(binary)} bytes follow the JSON header"
        )
    return request, binary


def decode_images(tensor: RequestInput, binary: bytes | None, limits: Limits) -> Images:
    """The input tensor as images the runtime takes."""
    if any(size < 0 for size in tensor.shape):
        raise TensorError(f"input {tensor.name!r}: negative size in shape {tensor.shape}")
    count = tensor.shape[0] if tensor.shape else 0
    if count < 1:
        raise TensorError(f"input {tensor.name!r}: shape {tensor.shape} holds no image")
    try:
        limits.check_image_count(count)
    except TooManyImagesError as error:
        raise TensorError(f"input {tensor.name!r}: {error.message}") from None
    if tensor.datatype == "BYTES":
        return _encoded_images(tensor, binary, count)
    if tensor.datatype in _PIXEL_DTYPES:
        return _pixels(tensor, binary)
    raise TensorError(
        f"input {tensor.name!r}: datatype {echo(tensor.datatype)} is not supported; "
        "send UINT8 or FP32 pixels, or BYTES image files"
    )


def _pixels(tensor: RequestInput, binary: bytes | None) -> np.ndarray:
    name, shape, datatype = tensor.name, tensor.shape, tensor.datatype
    if tuple(shape[1:]) not in PIXEL_SHAPES:
        allowed = " or ".join(str([-1, *s]).replace("-1", "N") for s in PIXEL_SHAPES)
        raise TensorError(f"input {name!r}: shape {shape} is not {allowed}")
    dtype = _PIXEL_DTYPES[datatype]
    expected = math.prod(shape)
    if binary is not None:
        if len(binary) != expected * dtype.itemsize:
            raise TensorError(
                f"input {name!r}: {datatype} {shape} takes {expected * dtype.itemsize} bytes, "
                f"got {len(binary)}"
            )
        values = np.frombuffer(binary, dtype=dtype)
    else:
        try:
            values = np.asarray(tensor.data)
        except ValueError:  # ragged nesting
            raise TensorError(f"input {name!r}: data is not a regular array") from None
        if values.size != expected:
            raise TensorError(
                f"input {name!r}: shape {shape} holds {expected} elements, data has {values.size}"
            )
        if values.dtype.kind not in ("iu" if datatype == "UINT8" else "iuf"):
            kind = "integers" if datatype == "UINT8" else "numbers"
            raise TensorError(f"input {name!r}: {datatype} data must be {kind}")
    count = shape[0]
    if datatype == "UINT8":
        if values.min() < 0 or values.max() > 255:
            raise TensorError(f"input {name!r}: UINT8 values must be in 0–255")
        return (values.astype(np.float32) / np.float32(255)).reshape(count, IMAGE_SIDE, IMAGE_SIDE)
    pixels = values.astype(np.float32).reshape(count, IMAGE_SIDE, IMAGE_SIDE)
    # The model saw [0, 1]; anything else (0–255 floats, standardized values) would be
    # answered confidently and wrongly, so it is refused rather than guessed at.
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 1:
        raise TensorError(
            f"input {name!r}: FP32 values must be in [0, 1] (pixel / 255); send 0–255 as UINT8"
        )
    return pixels


def image_bytes(image: EncodedImage) -> bytes:
    """The file's bytes; base64 text is decoded (in the runtime's worker thread)."""
    return image if isinstance(image, bytes) else decode_base64_image(image)


def _encoded_images(tensor: RequestInput, binary: bytes | None, count: int) -> list[EncodedImage]:
    name, shape = tensor.name, tensor.shape
    if shape not in ([count], [count, 1]):
        raise TensorError(f"input {name!r}: BYTES shape must be [N] or [N, 1], got {shape}")
    # Never more than `count` elements are taken out, however many the data holds.
    if binary is not None:
        elements: list[Any] = _split_bytes(name, binary, count)
    else:
        elements = _flatten(name, tensor.data or [], len(shape), count)
    if len(elements) != count:
        raise TensorError(
            f"input {name!r}: shape {shape} holds {count} elements, got {len(elements)}"
        )
    images: list[EncodedImage] = []
    for index, element in enumerate(elements):
        if isinstance(element, bytes):
            # Raw file bytes as the binary extension sends them; base64 text sent in
            # binary (tritonclient's default mode) is taken as it is.
            text = _BASE64_TEXT.fullmatch(element) is not None
            images.append(element.decode("ascii") if text else element)
        elif isinstance(element, str):
            images.append(element)
        else:
            raise TensorError(f"input {name!r}: element {index} is not a base64 string")
    return images


def _split_bytes(name: str, binary: bytes, count: int) -> list[bytes]:
    """Binary BYTES elements: each a 4-byte little-endian length, then that many bytes.
    More than `count` is refused at the first one too many."""
    elements: list[bytes] = []
    offset = 0
    while offset < len(binary):
        if len(elements) == count:
            raise TensorError(f"input {name!r}: binary data holds more than {count} elements")
        if offset + 4 > len(binary):
            raise TensorError(f"input {name!r}: binary BYTES data ends inside a length prefix")
        (length,) = struct.unpack_from("<I", binary, offset)
        offset += 4
        if offset + length > len(binary):
            raise TensorError(f"input {name!r}: binary BYTES element runs past the data")
        elements.append(binary[offset : offset + length])
        offset += length
    return elements


def _flatten(name: str, data: list[Any], depth: int, count: int) -> list[Any]:
    """`data`'s elements in row-major order, nested at most `depth` lists deep (the shape's
    dimensions), at most `count` of them. Iterative: no nesting can exhaust the stack."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            if len(stack) == depth:
                raise TensorError(
                    f"input {name!r}: data is nested deeper than its {depth} dimensions"
                )
            stack.append(iter(item))
        elif len(flat) == count:
            raise TensorError(f"input {name!r}: data holds more than {count} elements")
        else:
            flat.append(item)
    return flat


def not_a_digit_threshold(parameters: Parameters | None, *, default: float) -> float:
    """The request's `not_a_digit_threshold` parameter (0 < t ≤ 1), else `default`."""
    value = (parameters or {}).get(THRESHOLD_PARAMETER)
    if value is None:
        return default
    # bool is an int to Python, not a number to the protocol.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise TensorError(
            f"parameter {THRESHOLD_PARAMETER} must be a number in (0, 1], got {echo(value)}"
        )
    return float(value)


def _flag(parameters: Parameters | None, key: str, *, default: bool) -> bool:
    value = (parameters or {}).get(key, default)
    if not isinstance(value, bool):
        raise TensorError(f"parameter {key} must be true or false, got {echo(value)}")
    return value


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    where = clip(".".join(str(part) for part in first["loc"])) or "request"
    return f"invalid inference request: {where}: {first['msg']}"
