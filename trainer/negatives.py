"""Images that are not digits, for training and measuring the not-a-digit answer.

The held-out set is committed as `samples/negatives_held_out.npz` (`python -m
trainer.negatives` draws it again, the same pixels); the training negatives are drawn
afresh by each run from its own seed.

A real upload service gets everything: letters, logos, doodles, photos of the wrong thing,
blank canvases, two digits where one was asked for. `make_negative(kind, rng)` draws one
such upload (drawn by trainer/drawings.py), deterministically for a given numpy Generator;
`model_input` turns uploads
into what the model sees, through the service's own preprocessing (one function, as for
digits), so the model is trained on exactly what the API would hand it.

Kinds (`KINDS`):
- `letters`: capital and small letters that look like no digit, in the fonts matplotlib
  ships (DejaVu Sans/Serif/Mono, their bold and oblique faces, Computer Modern, STIX);
- `symbols`: # @ % & * + = ? and the like, in the same fonts;
- `shapes`: filled and outlined polygons, stars, crosses, arrows, hearts, discs
  (thin rings are left out: a ring is a fair "0");
- `doodles`: smileys, houses, suns, spirals, zigzags, hatching, random multi-stroke scribbles;
- `textures`: noise, stripes, checkerboards, blobs and smooth random fields, like photos of
  paper, fabric or a wall;
- `blank`: empty and near-blank uploads (a speck, faint noise, a constant tensor); the
  service refuses most of these as blank on `/v1`, and `/v2` tensors get them raw;
- `pairs`: two or three digits side by side.

The training and the held-out sets are drawn with different seeds, and `pairs` are made
from different digits (training digits for training, test digits for the held-out set).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from service.errors import InvalidImageError
from service.imaging.preprocess import normalize_digit
from trainer import drawings

KINDS: tuple[str, ...] = ("letters", "symbols", "shapes", "doodles", "textures", "blank", "pairs")

HELD_OUT_NPZ = Path(__file__).resolve().parents[1] / "samples" / "negatives_held_out.npz"
HELD_OUT_SEED = 20261207  # never used for training or tuning
HELD_OUT_PER_KIND = 300
HELD_OUT_PAIR_DIGITS = 2000
HELD_OUT_DESCRIPTION = (
    f"samples/negatives_held_out.npz: {HELD_OUT_PER_KIND} of each kind ({', '.join(KINDS)}), "
    f"seed {HELD_OUT_SEED}, pairs of the first {HELD_OUT_PAIR_DIGITS} test digits; never "
    "trained or tuned on"
)


def make_negative(
    kind: str, rng: np.random.Generator, digits: np.ndarray
) -> Image.Image | np.ndarray:
    """One non-digit of `kind`: an upload (PIL image), or for `blank` sometimes a model-ready
    float32 (28, 28) tensor. `digits` (uint8 (N, 28, 28)) feed the `pairs` kind."""
    makers: dict[str, Callable[[np.random.Generator], Image.Image | np.ndarray]] = {
        "letters": lambda r: drawings.text(drawings.LETTERS, r),
        "symbols": lambda r: drawings.text(drawings.SYMBOLS, r),
        "shapes": drawings.shape,
        "doodles": drawings.doodle,
        "textures": drawings.texture,
        "blank": drawings.blank,
        "pairs": lambda r: drawings.pair(r, digits),
    }
    try:
        return makers[kind](rng)
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}") from None


def model_input(negative: Image.Image | np.ndarray) -> np.ndarray | None:
    """What the model sees for this negative: float32 (28, 28) in [0, 1], through the
    service's preprocessing; None when the service would refuse the upload as blank."""
    if isinstance(negative, np.ndarray):
        return negative
    try:
        return normalize_digit(negative)
    except InvalidImageError:
        return None


def generate(count: int, seed: int, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`count` model inputs, spread evenly over `KINDS` → float32 (N, 28, 28) and the kind
    index of each (N,). Uploads the service refuses as blank are drawn again."""
    rng = np.random.default_rng(seed)
    images, kinds = [], []
    for index in range(count):
        kind = index % len(KINDS)
        while (pixels := model_input(make_negative(KINDS[kind], rng, digits))) is None:
            pass
        images.append(pixels)
        kinds.append(kind)
    return np.stack(images).astype(np.float32), np.asarray(kinds, dtype=np.uint8)


def held_out(test_digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The held-out negatives: float32 (N, 28, 28) in [0, 1] and kind indices. Read from the
    committed file; drawn again when it is absent (an installed package has no samples/),
    with `pairs` made from the first 2,000 canonical test digits, as the file was."""
    if HELD_OUT_NPZ.is_file():
        with np.load(HELD_OUT_NPZ, allow_pickle=False) as archive:
            return archive["images"].astype(np.float32) / 255, archive["kinds"]
    images, kinds = _draw_held_out(test_digits[:HELD_OUT_PAIR_DIGITS])
    return np.round(images * 255) / np.float32(255), kinds


def _draw_held_out(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return generate(HELD_OUT_PER_KIND * len(KINDS), HELD_OUT_SEED, digits)


def write_held_out() -> Path:
    """Draw the held-out set and save it as 8-bit pixels."""
    from samples.mnist import SAMPLE_NPZ  # the first 2,000 canonical test digits

    with np.load(SAMPLE_NPZ, allow_pickle=False) as archive:
        digits = archive["images"]
    images, kinds = _draw_held_out(digits[:HELD_OUT_PAIR_DIGITS])
    pixels = np.round(images * 255).astype(np.uint8)
    np.savez_compressed(HELD_OUT_NPZ, images=pixels, kinds=kinds, kind_names=np.asarray(KINDS))
    return HELD_OUT_NPZ


if __name__ == "__main__":
    print(f"wrote {write_held_out()}")
