"""Issues 14 and 23's targets, measured side by side in one run; digits against each peer;
and the protocols (one PNG per request as `/v1` JSON, `/v2` binary and gRPC) side by side.

The targets are ratios to what was measured in the same run (the reference app, the
bare interpreter, `/v1` on the protocols' server), so a noisy machine moves both sides of
each ratio alike; only the ready time and memory are absolute.
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


# Issue 23's ways to send one image (bench/protocols.py), as the report names them.
PROTOCOLS = {
    "v1_json": "/v1 JSON",
    "v2_binary_bytes": "/v2 binary BYTES",
    "v2_binary_uint8": "/v2 binary UINT8",
    "grpc_bytes": "gRPC BYTES",
}
# Issue 23's bounds, each form to `/v1` on the same server: c=1 p50 at most, c=64 req/s at
# least (None: no target).
PROTOCOL_BOUNDS: dict[str, tuple[float | None, float]] = {
    "v2_binary_bytes": (1.25, 0.8),
    "v2_binary_uint8": (1.25, 0.8),
    "grpc_bytes": (None, 0.8),
}


def _floor256(results: dict[str, Any]) -> float:
    return float(results["floor"][results["served_model"]]["256"]["images_per_s"])


def targets(results: dict[str, Any]) -> list[Row]:
    """(goal, measured, target, met) for issues 14 and 23's targets that this run measured."""
    ours = results.get("http", {}).get("digits")
    protocols = results.get("protocols", {}).get("forms")
    if not ours and not protocols:
        return []
    rows = _reference_rows(results) if ours else []
    rows += _protocol_rows(protocols) if protocols else []
    runs = [*(protocols or {}).values()] + ([ours["single"], ours["batch"]] if ours else [])
    figures = [r for by_level in runs for r in by_level.values()]
    if ours:
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
    errors, requests = sum(r["errors"] for r in figures), sum(r["requests"] for r in figures)
    rows.append(("errors", f"{errors} in {requests:,} requests", "0", errors == 0))
    return rows


def _reference_rows(results: dict[str, Any]) -> list[Row]:
    """`/v1` against the reference app and the floor (issue 23's bounds)."""
    ours = results["http"]["digits"]
    rows: list[Row] = []
    reference = results["http"].get("reference")
    if reference:
        mine, theirs = ours["single"]["64"]["throughput"], reference["single"]["64"]["throughput"]
        ratio = mine / max(theirs, 1e-9)
        measured = f"{mine:,.0f} vs {theirs:,.0f} req/s = {ratio:.2f}×"
        rows.append(("c=64 throughput vs the reference app", measured, "≥ 0.8×", ratio >= 0.8))
        mine, theirs = ours["single"]["1"]["p50_ms"], reference["single"]["1"]["p50_ms"]
        ratio = mine / max(theirs, 1e-9)
        measured = f"{mine:.2f} vs {theirs:.2f} ms = {ratio:.2f}×"
        rows.append(("c=1 p50 vs the reference app", measured, "≤ 1.6×", ratio <= 1.6))
    batch256 = ours["batch"].get("256", {}).get("images_per_s")
    if batch256:
        floor = _floor256(results)
        ratio = batch256 / floor
        rows.append(
            (
                "HTTP batch 256 vs the bare interpreter (batch 256, 1 thread)",
                f"{batch256:,.0f} vs {floor:,.0f} images/s = {ratio:.2f}×",
                "≥ 0.7×",
                ratio >= 0.7,
            )
        )
    return rows


def protocol_ratios(forms: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each form's c=1 p50 and c=64 req/s over `/v1` JSON's, on the same server."""
    v1 = forms["v1_json"]
    return {
        form: {
            "c1_p50": round(f["1"]["p50_ms"] / max(v1["1"]["p50_ms"], 1e-9), 3),
            "c64_throughput": round(f["64"]["throughput"] / max(v1["64"]["throughput"], 1e-9), 3),
        }
        for form, f in forms.items()
    }


def _protocol_rows(forms: dict[str, Any]) -> list[Row]:
    """Issue 23: every other form against `/v1` JSON on the same server."""
    ratios = protocol_ratios(forms)
    v1 = forms["v1_json"]
    rows: list[Row] = []
    for form, (most_p50, least_c64) in PROTOCOL_BOUNDS.items():
        if form not in forms:
            continue
        title, mine = PROTOCOLS[form], forms[form]
        if most_p50 is not None:
            ratio = ratios[form]["c1_p50"]
            measured = f"{mine['1']['p50_ms']:.2f} vs {v1['1']['p50_ms']:.2f} ms = {ratio:.2f}×"
            rows.append(
                (f"{title}: c=1 p50 vs /v1 JSON", measured, f"≤ {most_p50}×", ratio <= most_p50)
            )
        ratio = ratios[form]["c64_throughput"]
        measured = (
            f"{mine['64']['throughput']:,.0f} vs {v1['64']['throughput']:,.0f} req/s = {ratio:.2f}×"
        )
        rows.append(
            (
                f"{title}: c=64 throughput vs /v1 JSON",
                measured,
                f"≥ {least_c64}×",
                ratio >= least_c64,
            )
        )
    return rows


def protocol_table(results: dict[str, Any]) -> list[str]:
    """Markdown lines: each form's c=1 p50 and c=64 req/s, and their ratios to `/v1`."""
    forms = results.get("protocols", {}).get("forms")
    if not forms:
        return []
    ratios = protocol_ratios(forms)
    lines = [
        "| request | c=1 p50 ms | c=64 req/s | c=1 p50 ÷ /v1 | c=64 req/s ÷ /v1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for form, figures in forms.items():
        lines.append(
            f"| {PROTOCOLS.get(form, form)} | {figures['1']['p50_ms']:.2f} | "
            f"{figures['64']['throughput']:,.0f} | {ratios[form]['c1_p50']:.2f}× | "
            f"{ratios[form]['c64_throughput']:.2f}× |"
        )
    return lines


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
