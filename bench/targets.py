"""Issue 14's targets, measured side by side in one run, and digits against each peer.

The targets are ratios to what was measured in the same run (the reference app, the
bare interpreter), so a noisy machine moves both sides of each ratio alike; only the
ready time and memory are absolute.
"""

from __future__ import annotations

import math
from typing import Any

Row = tuple[str, str, str, bool]
# Contenders that are not peers: ours, and the yardstick.
NOT_PEERS = frozenset({"digits", "digits-unbatched", "reference"})
# What "the seed's way" is called beside the frameworks.
PEER_TITLES = {
    "seed": "seed's way",
    "bentoml": "BentoML",
    "mlserver": "MLServer",
    "litserve": "LitServe",
}


def _floor256(results: dict[str, Any]) -> float:
    return float(results["floor"][results["served_model"]]["256"]["images_per_s"])


def targets(results: dict[str, Any]) -> list[Row]:
    """(goal, measured, target, met) for issue 14's targets that this run measured."""
    http = results.get("http", {})
    ours = http.get("digits")
    if not ours:
        return []
    rows: list[Row] = []
    reference = http.get("reference")
    if reference:
        mine, theirs = ours["single"]["64"]["throughput"], reference["single"]["64"]["throughput"]
        ratio = mine / max(theirs, 1e-9)
        rows.append(
            (
                "c=64 throughput vs the reference app",
                f"{mine:,.0f} vs {theirs:,.0f} req/s = {ratio:.2f}×",
                "≥ 0.6×",
                ratio >= 0.6,
            )
        )
        mine, theirs = ours["single"]["1"]["p50_ms"], reference["single"]["1"]["p50_ms"]
        ratio = mine / max(theirs, 1e-9)
        rows.append(
            (
                "c=1 p50 vs the reference app",
                f"{mine:.2f} vs {theirs:.2f} ms = {ratio:.1f}×",
                "≤ 2×",
                ratio <= 2,
            )
        )
    batch256 = ours["batch"].get("256", {}).get("images_per_s")
    if batch256:
        floor = _floor256(results)
        ratio = batch256 / floor
        rows.append(
            (
                "HTTP batch 256 vs the bare interpreter (batch 256, 1 thread)",
                f"{batch256:,.0f} vs {floor:,.0f} images/s = {ratio:.2f}×",
                "≥ 0.5×",
                ratio >= 0.5,
            )
        )
    ready = ours["ready_seconds"]
    rows.append(("ready after start", f"{ready:.2f} s", "≤ 1.0 s", ready <= 1.0))
    largest = ours["rss_idle_largest_mb"]
    rows.append(
        (
            "RSS idle, largest process",
            f"{largest:.0f} MB ({ours['processes']} processes)",
            "≤ 100 MB",
            largest <= 100,
        )
    )
    runs = [*ours["single"].values(), *ours["batch"].values()]
    errors, requests = sum(r["errors"] for r in runs), sum(r["requests"] for r in runs)
    rows.append(("errors", f"{errors} in {requests:,} requests", "0", errors == 0))
    return rows


# (label, how to read it from a contender's results, True if higher is better)
_PEER_ROWS: list[tuple[str, Any, bool]] = [
    ("c=1 p50 ms", lambda f: f["single"]["1"]["p50_ms"], False),
    ("c=8 req/s", lambda f: f["single"]["8"]["throughput"], True),
    ("c=64 req/s", lambda f: f["single"]["64"]["throughput"], True),
    ("batch 256 images/s", lambda f: f["batch"].get("256", {}).get("images_per_s"), True),
    ("ready s", lambda f: f["ready_seconds"], False),
    ("RSS idle MB, all processes", lambda f: f["rss_idle_mb"], False),
]


def peer_names(results: dict[str, Any]) -> list[str]:
    return [name for name in results.get("http", {}) if name not in NOT_PEERS]


def peer_table(results: dict[str, Any]) -> list[str]:
    """Markdown lines: each measure for digits and each peer, with digits' advantage.

    The advantage is how many times better digits is (peer ÷ digits for latency, time and
    memory; digits ÷ peer for throughput): above 1 digits is ahead, below 1 (bold) behind.
    """
    http = results.get("http", {})
    peers = peer_names(results)
    if "digits" not in http or not peers:
        return []
    titles = [PEER_TITLES.get(name, name.capitalize()) for name in peers]
    lines = [
        "| measure | digits | " + " | ".join(titles) + " |",
        "|---|---:|" + "---:|" * len(peers),
    ]
    behind: list[str] = []
    for label, read, higher_is_better in _PEER_ROWS:
        mine = read(http["digits"])
        cells = [_number(mine)]
        for name, title in zip(peers, titles, strict=True):
            theirs = read(http[name])
            ahead = _advantage(mine, theirs, higher_is_better)
            if ahead is None:
                cells.append(_number(theirs))
                continue
            if ahead < 1:
                behind.append(f"{label} vs {title}")
            shown = (
                "∞" if math.isinf(ahead) else f"{ahead:.1f}×" if ahead >= 1 else f"**{ahead:.2f}×**"
            )
            cells.append(f"{_number(theirs)} (digits {shown})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Digits ahead on every row: {'yes' if not behind else 'no'}"]
    if behind:
        lines[-1] += f" (behind on: {'; '.join(behind)})"
    lines[-1] += "."
    return lines


def _advantage(mine: float | None, theirs: float | None, higher_is_better: bool) -> float | None:
    """How many times better digits is; None when either side was not measured (a
    throughput of 0 or a NaN latency: no request completed within the time limit)."""
    if mine is None or theirs is None or math.isnan(mine) or math.isnan(theirs):
        return None
    better, worse = (mine, theirs) if higher_is_better else (theirs, mine)
    if worse <= 0:
        return math.inf if better > 0 else None
    return better / worse


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.2f}" if value < 10 else f"{value:,.0f}"
