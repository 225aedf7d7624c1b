"""Preprocessing: safe decoding of any upload, and the MNIST-style normalization.

Every test builds real image bytes with Pillow and runs them through the same
functions the service calls; digits are real MNIST test digits.
"""

from __future__ import annotations

import base64
import io
import struct
import time
import warnings
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageFile

from samples.uploads import (
    STYLES,
    canvas_drawing,
    encode_jpeg,
    encode_png,
    load_test_digits,
    make_upload,
    paper_photo,
)
from service.errors import DigitsError, ImageTooLargeError, InvalidImageError
from service.imaging.decode import decode_base64_image, load_image
from service.imaging.preprocess import (
    _mnist_ready,
    _mnist_ready_batch,
    normalize_digit,
    preprocess_image,
    preprocess_images,
)
from service.settings import DEFAULT_MAX_PIXELS

CENTRE = 14.0  # MNIST's convention: centre of mass within ±0.5 px of pixel (14, 14)


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_test_digits(200)


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = float(image.sum())
    index = np.arange(image.shape[0])
    return float(image.sum(axis=1) @ index) / total, float(image.sum(axis=0) @ index) / total


def similarity(out: np.ndarray, digit: np.ndarray) -> float:
    """Correlation with the clean digit, allowing the 1-px integer-shift difference that
    centring a differently rendered copy legitimately produces."""
    target = digit.astype(np.float64).ravel()
    return max(
        float(np.corrcoef(np.roll(out, (dy, dx), axis=(0, 1)).ravel(), target)[0, 1])
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def assert_mnist_like(out: np.ndarray, digit: np.ndarray, min_similarity: float = 0.8) -> None:
    """float32 28×28 in [0, 1], white digit on black, boxed in 20 px, mass-centred, and
    recognisably the same digit."""
    assert out.shape == (28, 28)
    assert out.dtype == np.float32
    assert float(out.min()) >= 0.0
    assert float(out.max()) <= 1.0
    assert float(out.max()) > 0.9, "ink is not stretched to white"
    frame = np.concatenate(
        [out[:2].ravel(), out[-2:].ravel(), out[:, :2].ravel(), out[:, -2:].ravel()]
    )
    assert float(frame.mean()) < 0.05, "background is not black"
    rows = np.flatnonzero(out.any(axis=1))
    cols = np.flatnonzero(out.any(axis=0))
    assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 20
    centre_y, centre_x = centre_of_mass(out)
    assert abs(centre_y - CENTRE) <= 1.0
    assert abs(centre_x - CENTRE) <= 1.0
    assert similarity(out, digit) >= min_similarity


def save(image: Image.Image, form: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=form, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def handmade_png(width: int, height: int, idat: bytes, *, bit_depth: int = 8) -> bytes:
    """A greyscale PNG with any declared size, whatever the pixel data really holds."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def scene(digit: np.ndarray) -> np.ndarray:
    """Dark ink on light uneven paper, RGB, about 100–400 px, off-centre (seeded)."""
    return paper_photo(digit, np.random.default_rng(int(digit.sum())))


# ---------------------------------------------------------------- MNIST passthrough


def test_mnist_digits_pass_through_unchanged() -> None:
    """The canonical test digits, PNG-encoded, must reach the model as the raw array
    does: this is what keeps API accuracy equal to the published test accuracy."""
    images, _ = load_test_digits(2000)
    differences = np.array(
        [np.abs(preprocess_image(encode_png(d)) - d.astype(np.float32) / 255).max() for d in images]
    )
    assert (differences <= 1e-6).mean() >= 0.999
    assert np.median(differences) == 0.0


def _boxes(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """28×28 images of one ink box each, sizes, places and ink levels spread over both
    sides of every limit of the MNIST-ready rule (box 20 px, centre ±1 px, contrast)."""
    images = []
    for _ in range(count):
        height, width = rng.integers(14, 24, size=2)
        top, left = rng.integers(0, 29 - height), rng.integers(0, 29 - width)
        image = np.zeros((28, 28), np.uint8)
        image[top : top + height, left : left + width] = rng.integers(1, 256, (height, width))
        image[top : top + height, left : left + width] //= np.uint8(rng.integers(1, 12))  # faint
        images.append(image)
    exact = np.zeros((28, 28), np.uint8)
    exact[4:23, 10:18] = 24  # 19 rows: centre exactly 1 px off (13.0); contrast at the limit
    images += [exact, np.roll(exact, 1, axis=0), np.full((28, 28), 1, np.uint8)]
    return images


def test_a_batch_gives_each_image_the_pixels_it_gets_alone(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    rng = np.random.default_rng(7)
    arrays = list(digits[0][:100]) + _boxes(rng, 400)
    uploads = [encode_png(array) for array in arrays]
    uploads += [make_upload(digits[0][i], STYLES[i % len(STYLES)], rng) for i in range(20)]
    alone, kept = [], []
    for upload in uploads:
        try:
            alone.append(preprocess_image(upload))
            kept.append(upload)
        except InvalidImageError:
            pass  # blank: no digit, in a batch too (below)
    ready = _mnist_ready_batch(np.stack(arrays))[1]
    assert 0.2 < ready.mean() < 0.8  # both sides of the rule are exercised
    assert [_mnist_ready(array) is not None for array in arrays] == ready.tolist()
    np.testing.assert_array_equal(preprocess_images(kept), np.stack(alone))


def test_a_bad_image_in_a_batch_raises_as_it_does_alone() -> None:
    digit = load_test_digits(1)[0][0]
    uploads = [encode_png(digit), encode_png(np.zeros((28, 28), np.uint8)), b"junk"]
    with pytest.raises(InvalidImageError, match="blank"):
        preprocess_images(uploads)
    seen: list[int] = []

    def one(index: int, data: bytes) -> np.ndarray:
        seen.append(index)
        return np.zeros((28, 28), np.float32)

    assert preprocess_images(uploads, one).shape == (3, 28, 28)
    assert seen == [1, 2]  # the MNIST-ready digit never reached the general path


def test_mnist_digit_through_the_general_path_stays_close(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    """Without the fast path (a 29th column stops it), an MNIST digit comes out nearly as
    it went in: the normalization itself is MNIST's."""
    for digit in digits[0][:50]:
        widened = np.pad(digit, ((0, 0), (0, 1)))
        out = normalize_digit(Image.fromarray(widened))
        assert_mnist_like(out, digit, min_similarity=0.97)


# ---------------------------------------------------------------- formats and modes


def _modes(base: np.ndarray) -> dict[str, tuple[Callable[[], bytes], str]]:
    """Upload builders for every format and mode, with the mode Pillow must decode to."""
    rgb = Image.fromarray(base)
    gray = rgb.convert("L")
    level = np.asarray(gray)
    binary = gray.point(lambda v: 255 if v > 110 else 0).convert("1", dither=Image.Dither.NONE)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)  # 256 colours: ink survives
    return {
        "png-1": (lambda: save(binary, "PNG"), "1"),
        "png-L": (lambda: save(gray, "PNG"), "L"),
        "png-LA": (lambda: save(gray.convert("LA"), "PNG"), "LA"),
        "png-P": (lambda: save(palette, "PNG"), "P"),
        "png-RGB": (lambda: save(rgb, "PNG"), "RGB"),
        "png-RGBA-opaque": (lambda: save(rgb.convert("RGBA"), "PNG"), "RGBA"),
        "png-I;16": (lambda: save(Image.fromarray(level.astype(np.uint16) * 257), "PNG"), "I;16"),
        "jpeg-L": (lambda: save(gray, "JPEG", quality=85), "L"),
        "jpeg-RGB": (lambda: save(rgb, "JPEG", quality=85), "L"),  # decoded straight to grey
        "jpeg-RGB-progressive": (lambda: save(rgb, "JPEG", quality=85, progressive=True), "L"),
        "jpeg-CMYK": (lambda: save(rgb.convert("CMYK"), "JPEG", quality=90), "CMYK"),
        "gif-P": (lambda: save(palette, "GIF"), "P"),
        "bmp-1": (lambda: save(binary, "BMP"), "1"),
        "bmp-L": (lambda: save(gray, "BMP"), "L"),
        "bmp-P": (lambda: save(palette, "BMP"), "P"),
        "bmp-RGB": (lambda: save(rgb, "BMP"), "RGB"),
        "webp-RGB": (lambda: save(rgb, "WEBP", quality=85), "RGB"),
        "webp-RGB-lossless": (lambda: save(rgb, "WEBP", lossless=True), "RGB"),
        "tiff-RGB": (lambda: save(rgb, "TIFF"), "RGB"),
        "tiff-RGB-lzw": (lambda: save(rgb, "TIFF", compression="tiff_lzw"), "RGB"),
        "tiff-CMYK": (lambda: save(rgb.convert("CMYK"), "TIFF"), "CMYK"),
        "tiff-LA": (lambda: save(gray.convert("LA"), "TIFF"), "LA"),
        "tiff-I;16": (lambda: save(Image.fromarray(level.astype(np.uint16) * 257), "TIFF"), "I;16"),
        "tiff-I": (lambda: save(gray.convert("I"), "TIFF"), "I"),
        "tiff-F-unit": (lambda: save(Image.fromarray(level.astype(np.float32) / 255), "TIFF"), "F"),
        "tiff-F-255": (lambda: save(Image.fromarray(level.astype(np.float32)), "TIFF"), "F"),
    }


MODE_CASES = sorted(_modes(np.zeros((8, 8, 3), dtype=np.uint8)))


@pytest.mark.parametrize("case", MODE_CASES)
def test_every_format_and_mode_decodes_to_the_digit(
    case: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    for digit in digits[0][:3]:
        build, expected_mode = _modes(scene(digit))[case]
        data = build()
        assert load_image(data).mode == expected_mode  # the case really exercises that mode
        assert_mnist_like(preprocess_image(data), digit)


PILLOW_MODES = [
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr",
    "LAB", "HSV", "I", "I;16", "I;16L", "I;16B", "I;16N", "F",
]  # fmt: skip


def in_mode(rgb: Image.Image, mode: str) -> Image.Image:
    """`rgb` in `mode`, with wide modes spanning their real range (16-bit: 0–65535)."""
    level = np.asarray(rgb.convert("L")).astype(np.int32)
    if mode.startswith("I;16"):
        return Image.fromarray(level * 257).convert(mode)  # via "I": Pillow keeps the values
    if mode == "I":
        return Image.fromarray(level * 257)
    if mode == "F":
        return Image.fromarray(level.astype(np.float32) / 255)
    if mode == "1":
        return (
            rgb.convert("L")
            .point(lambda v: 255 if v > 110 else 0)
            .convert("1", dither=Image.Dither.NONE)
        )
    return rgb.convert(mode)


@pytest.mark.parametrize("mode", PILLOW_MODES)
def test_every_pillow_mode_normalizes(mode: str, digits: tuple[np.ndarray, np.ndarray]) -> None:
    for digit in digits[0][:3]:
        image = in_mode(Image.fromarray(scene(digit)), mode)
        assert image.mode == mode
        assert_mnist_like(normalize_digit(image), digit)


@pytest.mark.parametrize("mode", ["LA", "La", "PA", "RGBA", "RGBa"])
def test_every_alpha_mode_reads_a_transparent_canvas(
    mode: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    for number, digit in enumerate(digits[0][:3]):
        canvas = Image.fromarray(canvas_drawing(digit, np.random.default_rng(number), light=False))
        # Pillow's direct RGBA → La conversion drops alpha; La is reached through LA.
        image = canvas.convert("LA").convert("La") if mode == "La" else canvas.convert(mode)
        assert image.mode == mode
        assert_mnist_like(normalize_digit(image), digit)


@pytest.mark.parametrize("light", [False, True], ids=["dark-strokes", "light-strokes"])
@pytest.mark.parametrize("form", ["png-RGBA", "png-LA", "webp-RGBA", "gif-P-transparent"])
def test_transparent_canvas_drawings(
    form: str, light: bool, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """Strokes on a transparent canvas become a white digit on black, whatever their
    colour: alpha is the ink. (Compositing over white would lose light strokes, over
    black dark ones.)"""
    for number, digit in enumerate(digits[0][:4]):
        rgba = canvas_drawing(digit, np.random.default_rng(number), light=light)
        image = Image.fromarray(rgba)
        if form == "png-RGBA":
            data = save(image, "PNG")
        elif form == "png-LA":
            data = save(image.convert("LA"), "PNG")
        elif form == "webp-RGBA":
            data = save(image, "WEBP", lossless=True)
        else:  # GIF: palette entry 0 is transparent, strokes are solid entry 1
            stroke = [int(c) for c in rgba[rgba[..., 3] > 0][0, :3]]
            palette = Image.new("P", image.size, 0)
            palette.putpalette([0, 0, 0, *stroke])
            painted = np.where(rgba[..., 3] > 100, 255, 0).astype(np.uint8)
            palette.paste(1, mask=Image.fromarray(painted))
            data = save(palette, "GIF", transparency=0)
        assert load_image(data).mode in ("RGBA", "LA", "P")
        assert_mnist_like(preprocess_image(data), digit)


def test_opaque_photo_with_a_transparent_corner_is_read_as_a_photo() -> None:
    """Opaque paper with only a transparent corner is a photo, shown over white."""
    digit = load_test_digits(1)[0][0]
    rgba = np.dstack([scene(digit), np.full(scene(digit).shape[:2], 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # a transparent corner
    assert_mnist_like(preprocess_image(encode_png(rgba)), digit)


@pytest.mark.parametrize("form", ["GIF", "WEBP", "TIFF"])
def test_animations_and_multipage_files_use_the_first_frame(
    form: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    first, second = digits[0][0], digits[0][1]  # a 7 and a 2
    frames = [Image.fromarray(255 - np.kron(d, np.ones((4, 4), np.uint8))) for d in (first, second)]
    if form == "GIF":
        frames = [f.convert("P") for f in frames]
    data = save(
        frames[0],
        form,
        save_all=True,
        append_images=frames[1:],
        **({"lossless": True} if form == "WEBP" else {}),
    )
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    out = preprocess_image(data)
    assert_mnist_like(out, first)
    assert similarity(out, first) > similarity(out, second) + 0.2


# ---------------------------------------------------------------- realistic uploads


@pytest.mark.parametrize("style", STYLES)
def test_realistic_uploads_look_like_the_clean_digit(
    style: str, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    """Paper photos (JPEG and lossless) and canvas drawings normalize to (nearly) what
    the clean MNIST digit is."""
    rng = np.random.default_rng(2024)
    scores = []
    for digit in digits[0][:40]:
        out = preprocess_image(make_upload(digit, style, rng))
        assert_mnist_like(out, digit, min_similarity=0.75)
        scores.append(similarity(out, digit))
    assert np.median(scores) >= 0.93


def test_light_digit_on_dark_background_photo(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Chalk on a blackboard, or a dark-mode screenshot: no inversion needed."""
    for digit in digits[0][:5]:
        assert_mnist_like(preprocess_image(encode_png(255 - scene(digit))), digit)


def test_small_off_centre_digit_in_a_big_image(digits: tuple[np.ndarray, np.ndarray]) -> None:
    digit = digits[0][3]
    sheet = np.full((900, 1200), 235, dtype=np.uint8)
    small = np.asarray(Image.fromarray(255 - digit).resize((140, 140), Image.Resampling.BICUBIC))
    sheet[40:180, 1000:1140] = np.minimum(sheet[40:180, 1000:1140], small)
    assert_mnist_like(preprocess_image(encode_png(sheet)), digit)
    assert_mnist_like(preprocess_image(encode_jpeg(sheet, quality=80)), digit)


def test_large_jpeg_decodes_at_reduced_scale(digits: tuple[np.ndarray, np.ndarray]) -> None:
    digit = digits[0][4]
    photo = Image.fromarray(scene(digit))
    large = photo.resize((photo.width * 8, photo.height * 8), Image.Resampling.BICUBIC)
    data = save(large, "JPEG", quality=85)
    image = load_image(data)
    assert image.mode == "L"
    assert image.size == photo.size  # drafted at 1/8 scale, still far above the 20-px box
    assert_mnist_like(preprocess_image(data), digit)


def test_exif_orientation_is_applied(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Phones store photos sideways with an orientation tag; the digit must be upright."""
    digit = digits[0][0]
    upright = scene(digit)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    data = save(stored, "JPEG", quality=90, exif=exif.tobytes())
    assert_mnist_like(preprocess_image(data), digit)


def test_dark_ink_photo_equals_the_clean_version(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Same digit, once as a clean white-on-black PNG and once as dark ink on paper."""
    for digit in digits[0][:20]:
        clean = preprocess_image(encode_png(np.kron(digit, np.ones((5, 5), np.uint8))))
        paper = preprocess_image(encode_jpeg(scene(digit), quality=80))
        assert similarity(paper, clean * 255) >= 0.85


# ---------------------------------------------------------------- base64


def test_base64_variants_decode_to_the_same_bytes() -> None:
    data = bytes(range(256)) * 3 + b"\xfb\xff"  # exercises '+', '/' and padding
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    assert "+" in standard and "/" in standard and standard.endswith("=")
    wrapped = "\n".join(standard[i : i + 76] for i in range(0, len(standard), 76))
    for text in (
        standard,
        standard.rstrip("="),
        urlsafe,
        urlsafe.rstrip("="),
        f"  {wrapped}\r\n",
        f"data:image/png;base64,{standard}",
        f"DATA:image/jpeg;BASE64,{urlsafe.rstrip('=')}",
        f"data:;base64,{wrapped}",
    ):
        assert decode_base64_image(text) == data


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n",
        "not base64!",
        "QUJD$",
        "A",  # a length no base64 can have
        "QUJDRA===",
        "Zm9v\u00e9",
        "data:image/png,iVBORw0KGgo",  # a data URL, but not base64
        "data:image/png;base64,",
        "data:image/png;base64",
        "====",
    ],
)
def test_bad_base64_is_an_invalid_image(text: str) -> None:
    with pytest.raises(InvalidImageError, match="not valid base64"):
        decode_base64_image(text)


# ---------------------------------------------------------------- bad bytes


def test_random_and_empty_bytes_are_invalid_images() -> None:
    rng = np.random.default_rng(0)
    for size in (0, 1, 8, 100, 5000):
        with pytest.raises(InvalidImageError):
            preprocess_image(rng.bytes(size))


def test_unsupported_formats_are_rejected_by_name() -> None:
    image = Image.new("L", (32, 32), 128)
    for form in ("PPM", "ICO", "PCX", "TGA"):
        with pytest.raises(InvalidImageError, match="supported formats: PNG, JPEG"):
            load_image(save(image, form))


@pytest.mark.parametrize("form", ["PNG", "JPEG"])
def test_truncated_files_are_invalid_images(form: str) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    photo = scene(load_test_digits(1)[0][0])
    data = encode_png(photo) if form == "PNG" else encode_jpeg(photo, quality=85)
    for fraction in (0.05, 0.3, 0.6, 0.95):
        with pytest.raises(InvalidImageError):
            preprocess_image(data[: int(len(data) * fraction)])
    if form == "JPEG":
        with pytest.raises(InvalidImageError, match="truncated"):
            preprocess_image(data[:-2])  # just the end-of-image marker missing
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_zero_size_images_are_invalid() -> None:
    for width, height in ((0, 10), (10, 0), (0, 0)):
        with pytest.raises(InvalidImageError):
            load_image(handmade_png(width, height, zlib.compress(b"")))


def test_images_over_the_pixel_limit_are_too_large() -> None:
    data = encode_png(np.zeros((80, 100), dtype=np.uint8))
    with pytest.raises(ImageTooLargeError, match=r"100×80.*7999"):
        load_image(data, max_pixels=7999)
    assert load_image(data, max_pixels=8000).size == (100, 80)


def test_decompression_bomb_is_rejected_before_decoding() -> None:
    """7000×7000 bilevel PNG: 49 Mpx declared, a few kB of zlib; over the default limit."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + 7000 // 8)
    idat = b"".join(compressor.compress(row * 1000) for _ in range(7)) + compressor.flush()
    bomb = handmade_png(7000, 7000, idat, bit_depth=1)
    assert len(bomb) < 20_000
    assert DEFAULT_MAX_PIXELS < 7000 * 7000
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match="7000×7000"):
        preprocess_image(bomb)
    assert time.perf_counter() - started < 0.05


def test_bomb_beyond_pillows_own_limit_is_too_large() -> None:
    bomb = handmade_png(100_000, 100_000, zlib.compress(bytes(1000)))
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        preprocess_image(bomb, max_pixels=10**12)
    assert time.perf_counter() - started < 0.05


def test_limit_holds_even_without_pillows_global_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(ImageTooLargeError):
        load_image(encode_png(np.zeros((100, 100), dtype=np.uint8)), max_pixels=9999)


def test_pillows_bomb_warning_becomes_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between Pillow's limit and twice it, Pillow only warns; that is still too large."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode_png(np.zeros((40, 40), dtype=np.uint8))  # 1600 px
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageTooLargeError):
        load_image(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLargeError):
            load_image(data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt tags
def test_corrupted_files_never_raise_anything_but_digits_errors() -> None:
    """Byte-flipped and cut files of every format: a clean error or a valid digit."""
    photo = Image.fromarray(scene(load_test_digits(1)[0][0])).resize((96, 80))
    originals = [
        save(photo, "PNG"),
        save(photo.convert("RGBA"), "PNG"),
        save(photo, "JPEG", quality=80),
        save(photo.convert("P"), "GIF"),
        save(photo, "BMP"),
        save(photo, "WEBP"),
        save(photo, "TIFF"),
        save(photo, "TIFF", compression="tiff_lzw"),
    ]
    rng = np.random.default_rng(1)
    outcomes = {"ok": 0, "error": 0}
    for original in originals:
        for _ in range(60):
            mutated = bytearray(original)
            for position in rng.integers(0, len(mutated), size=int(rng.integers(1, 6))):
                mutated[position] = int(rng.integers(0, 256))
            if rng.random() < 0.3:
                mutated = mutated[: int(rng.integers(1, len(mutated)))]
            try:
                out = preprocess_image(bytes(mutated), max_pixels=1_000_000)
            except DigitsError:
                outcomes["error"] += 1
            else:
                assert out.shape == (28, 28) and out.dtype == np.float32
                assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
                outcomes["ok"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


# ---------------------------------------------------------------- blank images


@pytest.mark.parametrize(
    "make",
    [
        lambda: encode_png(np.full((50, 50), 255, np.uint8)),
        lambda: encode_png(np.zeros((28, 28), np.uint8)),
        lambda: encode_png(np.full((300, 200, 3), 180, np.uint8)),
        lambda: encode_jpeg(
            (200 + np.random.default_rng(0).normal(0, 2, (120, 160))).clip(0, 255).astype(np.uint8),
            80,
        ),
        lambda: encode_png(np.zeros((280, 280, 4), np.uint8)),  # an empty canvas
        lambda: encode_png(np.full((280, 280, 4), 255, np.uint8)),
        lambda: encode_png(np.full((64, 64), 128, np.uint8) + np.eye(64, dtype=np.uint8) * 8),
    ],
    ids=[
        "white",
        "black-28",
        "grey-rgb",
        "noisy-grey-jpeg",
        "empty-canvas",
        "opaque-white-rgba",
        "faint-line",
    ],
)
def test_blank_images_have_no_digit(make: Callable[[], bytes]) -> None:
    with pytest.raises(InvalidImageError, match="blank"):
        preprocess_image(make())


# ---------------------------------------------------------------- test data


def test_committed_sample_matches_the_real_test_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh clone has no ../shared: the committed sample must be the same digits."""
    from samples import uploads
    from samples.mnist import NO_SHARED_ENV

    shared = uploads.load_test_digits(50)
    monkeypatch.setenv(NO_SHARED_ENV, "1")
    uploads._test_digits.cache_clear()
    try:
        images, labels = uploads.load_test_digits(50)
        assert len(uploads.load_test_digits()[0]) == 2000
    finally:
        uploads._test_digits.cache_clear()
    assert images.dtype == np.uint8 and images.shape == (50, 28, 28)
    np.testing.assert_array_equal(images, shared[0])
    np.testing.assert_array_equal(labels, shared[1])
