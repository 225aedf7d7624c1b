"""Property-based fuzzing of the upload path: `decode_base64_image` and `preprocess_image`.

The contract for *any* bytes: either a `DigitsError` subclass (a 4xx naming the problem)
or a valid float32 (28, 28) image in [0, 1] — never another exception, never unbounded
memory. Run with `--hypothesis-show-statistics` to see how many cases each test ran.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from samples.uploads import load_test_digits
from service.errors import DigitsError, ImageTooLargeError, InvalidImageError
from service.imaging.decode import decode_base64_image
from service.imaging.preprocess import preprocess_image
from service.web.errors import status_of
from tests.conftest import REPO_ROOT
from tests.hostile_images import HEADER_BUILDERS, MAX_DIMENSION

# deadline=None: the CPU is shared, so a slow case is not a failing one.
FUZZ = settings(
    deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150
)
MORE = settings(FUZZ, max_examples=300)
# Pillow warns about lying headers and corrupt metadata before the input is refused.
pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin"),
]
MAX_PIXELS = 4_000_000  # lower than the default so that legal cases stay cheap

# Format → modes Pillow can write in it (each read back as itself or a close relative).
WRITABLE = {
    "PNG": ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "GIF": ("P", "L"),
    "BMP": ("1", "L", "RGB"),
    "WEBP": ("RGB", "RGBA"),
    "TIFF": ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "I", "I;16", "F"),
}
FORMAT_MODES = [(fmt, mode) for fmt, modes in WRITABLE.items() for mode in modes]


def outcome(run: Callable[[], np.ndarray]) -> str:
    """'rejected' (a DigitsError, 4xx) or 'accepted' (a valid digit image); anything else fails."""
    try:
        result = run()
    except DigitsError as error:
        assert 400 <= status_of(error) < 500 and error.message
        return "rejected"
    assert result.shape == (28, 28) and result.dtype == np.float32
    assert np.isfinite(result).all() and result.min() >= 0.0 and result.max() <= 1.0
    return "accepted"


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def make_image(mode: str, width: int, height: int, content: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if content == "digit":
        digits, _ = load_test_digits(50)
        grey = Image.fromarray(digits[seed % 50]).resize((width, height))
    elif content == "noise":
        grey = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8))
    else:  # flat: no ink at all
        grey = Image.new("L", (width, height), int(rng.integers(0, 256)))
    if mode == "I;16":
        return Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    if mode == "F":
        return Image.fromarray(np.asarray(grey).astype(np.float32) / 255)
    if mode in ("YCbCr", "LAB"):
        return grey.convert("RGB").convert(mode)
    return grey.convert(mode)


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` intact, truncated, with bytes overwritten, or with a slice repeated."""
    kind = draw(st.sampled_from(["intact", "truncate", "flip", "splice"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "flip":
        buffer = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            buffer[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(buffer)
    if kind == "splice":
        start = draw(st.integers(0, len(data) - 1))
        end = draw(st.integers(start, len(data)))
        return data[:end] + data[start:]
    return data


@MORE
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    outcome(lambda: preprocess_image(data, max_pixels=MAX_PIXELS))


@MORE
@given(st.data())
def test_real_images_intact_truncated_and_corrupted(data: st.DataObject) -> None:
    fmt, mode = data.draw(st.sampled_from(FORMAT_MODES), label="format/mode")
    width = data.draw(st.integers(1, 300), label="width")
    height = data.draw(st.integers(1, 300), label="height")
    content = data.draw(st.sampled_from(["digit", "noise", "flat"]), label="content")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    original = encode(make_image(mode, width, height, content, seed), fmt)
    upload = data.draw(mutated(original), label="upload")
    result = outcome(lambda: preprocess_image(upload, max_pixels=MAX_PIXELS))
    if upload == original and content == "flat" and mode != "1":  # "1" dithers flat grey
        assert result == "rejected"  # nothing to recognise must never produce a digit


@FUZZ
@given(
    st.sampled_from(sorted(HEADER_BUILDERS)),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_headers_that_declare_absurd_sizes(fmt: str, width: int, height: int) -> None:
    limit = MAX_DIMENSION[fmt]
    width, height = width % (limit + 1), height % (limit + 1)
    upload = HEADER_BUILDERS[fmt](width, height)
    tracemalloc.start()
    try:
        result = outcome(lambda: preprocess_image(upload, max_pixels=MAX_PIXELS))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if width * height > MAX_PIXELS:
        assert result == "rejected"
    # numpy's buffers are traced; Pillow's are not (see the RSS test below).
    assert peak < 32 * 2**20


@pytest.mark.parametrize(("fmt", "mode"), FORMAT_MODES)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (1, 10_000), (10_000, 1), (3, 2_000)])
def test_degenerate_shapes(fmt: str, mode: str, width: int, height: int) -> None:
    image = make_image(mode, width, height, "noise", width * height)
    outcome(lambda: preprocess_image(encode(image, fmt), max_pixels=MAX_PIXELS))


def test_declared_size_over_the_limit_is_image_too_large() -> None:
    for build in HEADER_BUILDERS.values():
        with pytest.raises(ImageTooLargeError):
            preprocess_image(build(30_000, 30_000), max_pixels=MAX_PIXELS)
        with pytest.raises(InvalidImageError):  # small but truncated: not too large
            preprocess_image(build(40, 40), max_pixels=MAX_PIXELS)


@FUZZ
@given(st.text(max_size=512))
def test_base64_of_any_text(text: str) -> None:
    try:
        data = decode_base64_image(text)
    except InvalidImageError:
        return
    assert isinstance(data, bytes) and data


@FUZZ
@given(
    st.binary(min_size=1, max_size=2048),
    st.sampled_from(["standard", "urlsafe", "unpadded", "data_url", "wrapped"]),
)
def test_base64_spellings_round_trip(payload: bytes, spelling: str) -> None:
    text = base64.b64encode(payload).decode()
    if spelling == "urlsafe":
        text = base64.urlsafe_b64encode(payload).decode()
    elif spelling == "unpadded":
        text = text.rstrip("=")
    elif spelling == "data_url":
        text = "data:image/png;base64," + text
    elif spelling == "wrapped":  # MIME-style line breaks, as `base64` the tool writes them
        text = "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\n"
    assert decode_base64_image(text) == payload


def test_bombs_are_refused_in_bounded_memory() -> None:
    """Real bombs, in a fresh process: its peak RSS barely moves while refusing them all."""
    script = textwrap.dedent(
        """
        import json, resource
        from tests.hostile_images import png_bomb, png_iccp_bomb, HEADER_BUILDERS
        from samples.uploads import encode_png, load_test_digits
        from service.errors import DigitsError
        from service.imaging.preprocess import preprocess_image

        bombs = [png_bomb(30_000, 30_000), png_bomb(8_000, 6_000), png_iccp_bomb(64)]
        bombs += [build(65_535, 65_535) for build in HEADER_BUILDERS.values()]
        preprocess_image(encode_png(load_test_digits(1)[0][0]))  # warm: imports, codecs
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        outcomes = []
        for bomb in bombs:
            try:
                preprocess_image(bomb)
                outcomes.append("accepted")
            except DigitsError as error:
                outcomes.append(type(error).__name__)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"growth_kib": after - before, "outcomes": outcomes}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # 30k² and 8k×6k are over the default 16 MP limit; the iCCP bomb is refused by Pillow.
    assert report["outcomes"][:2] == ["ImageTooLargeError", "ImageTooLargeError"]
    assert "accepted" not in report["outcomes"]
    assert report["growth_kib"] < 64 * 1024, report
