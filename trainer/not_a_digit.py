"""How well a model tells digits from things that are not digits (numpy only).

Measured on the canonical test digits and on the held-out generated non-digits
(trainer/negatives.py), with the probabilities the service returns: the model's
11 outputs, the digits' first and "not a digit" last.
"""

from __future__ import annotations

import numpy as np

from service.model_card import NotADigitQuality

CONFIDENT = 0.9  # "answered as a digit with confidence ≥ 0.9"
KEEP_DIGITS = 0.995  # the threshold that keeps this share of real digits


def auroc(low: np.ndarray, high: np.ndarray) -> float:
    """P(a random item of `high` scores above a random item of `low`), ties counted half:
    the Mann–Whitney statistic, from the ranks of all scores together."""
    scores = np.concatenate([low, high]).astype(np.float64)
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties, so equal scores count half either way.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2
    rank_sum = ranks[len(low) :].sum()
    return float((rank_sum - len(high) * (len(high) + 1) / 2) / (len(high) * len(low)))


def _accepted(outputs: np.ndarray, threshold: float) -> np.ndarray:
    return outputs[:, -1] < threshold


def measure(
    digit_outputs: np.ndarray,
    negative_outputs: np.ndarray,
    negative_kinds: np.ndarray,
    kind_names: tuple[str, ...],
    threshold: float,
) -> NotADigitQuality:
    """`*_outputs`: (N, 11) probabilities, digits first, not-a-digit last."""
    digit_scores, negative_scores = digit_outputs[:, -1], negative_outputs[:, -1]
    # Refusing when not_a_digit ≥ t keeps the digits scoring below t: the lowest t that
    # keeps ⌈99.5 %⌉ of them is just above the score of the last digit to keep (here the
    # next multiple of 1e-6, as the card records it).
    kept = int(np.ceil(KEEP_DIGITS * len(digit_scores)))
    keep = (np.floor(float(np.sort(digit_scores)[kept - 1]) * 1e6) + 1) / 1e6
    accepted = _accepted(negative_outputs, threshold)
    confident = accepted & (negative_outputs[:, :-1].max(axis=1) >= CONFIDENT)
    by_kind = {
        name: round(float(accepted[negative_kinds == index].mean()), 6)
        for index, name in enumerate(kind_names)
        if (negative_kinds == index).any()
    }
    return NotADigitQuality(
        digits=len(digit_outputs),
        negatives=len(negative_outputs),
        auroc=round(auroc(digit_scores, negative_scores), 6),
        threshold=threshold,
        digits_refused=round(float((~_accepted(digit_outputs, threshold)).mean()), 6),
        negatives_accepted=round(float(accepted.mean()), 6),
        negatives_confident=round(float(confident.mean()), 6),
        keep_99_5_threshold=keep,
        negatives_accepted_at_keep_99_5=round(float(_accepted(negative_outputs, keep).mean()), 6),
        accepted_by_kind=by_kind,
    )


def format_quality(name: str, quality: NotADigitQuality) -> str:
    kinds = ", ".join(f"{kind} {share:.1%}" for kind, share in quality.accepted_by_kind.items())
    return (
        f"{name}: AUROC {quality.auroc:.4f}; at threshold {quality.threshold}: "
        f"{quality.digits_refused:.2%} of {quality.digits} digits refused, "
        f"{quality.negatives_accepted:.2%} of {quality.negatives} non-digits accepted "
        f"({quality.negatives_confident:.2%} with confidence ≥ {CONFIDENT}); "
        f"keeping 99.5 % of digits (threshold {quality.keep_99_5_threshold:.4g}): "
        f"{quality.negatives_accepted_at_keep_99_5:.2%} of non-digits accepted\n"
        f"  accepted by kind: {kinds}"
    )
