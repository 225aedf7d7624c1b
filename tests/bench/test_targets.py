"""Issue 14's targets and the peers' table are computed from the run's own figures."""

from __future__ import annotations

from typing import Any

from bench.targets import peer_table, targets


def _server(c1_p50: float, c64: float, batch256: float | None = None) -> dict[str, Any]:
    run = {"errors": 0, "requests": 100}
    return {
        "ready_seconds": 0.5,
        "rss_idle_mb": 160.0,
        "rss_idle_largest_mb": 80.0,
        "processes": 2,
        "single": {
            "1": {**run, "p50_ms": c1_p50, "throughput": 1000 / c1_p50},
            "8": {**run, "p50_ms": 2 * c1_p50, "throughput": c64 / 2},
            "64": {**run, "p50_ms": 10 * c1_p50, "throughput": c64},
        },
        "batch": {} if batch256 is None else {"256": {**run, "images_per_s": batch256}},
    }


def _results(**http: dict[str, Any]) -> dict[str, Any]:
    floor = {"256": {"images_per_s": 10_000.0}}
    return {"served_model": "m.tflite", "floor": {"m.tflite": floor}, "http": http}


def test_targets_are_ratios_to_the_reference_app_and_the_floor() -> None:
    results = _results(
        digits=_server(c1_p50=0.5, c64=4000, batch256=6000),
        reference=_server(c1_p50=0.2, c64=6000),
    )
    met = {goal: ok for goal, _, _, ok in targets(results)}
    assert met["c=64 throughput vs the reference app"]  # 0.67 ≥ 0.6
    assert not met["c=1 p50 vs the reference app"]  # 2.5 > 2
    assert met["HTTP batch 256 vs the bare interpreter (batch 256, 1 thread)"]  # 0.6 ≥ 0.5
    assert met["ready after start"] and met["RSS idle, largest process"] and met["errors"]
    results["http"]["digits"]["single"]["64"]["errors"] = 3
    assert not {goal: ok for goal, _, _, ok in targets(results)}["errors"]


def test_peer_table_says_where_digits_is_behind() -> None:
    results = _results(
        digits=_server(c1_p50=1.0, c64=2000, batch256=5000),
        mlserver=_server(c1_p50=2.0, c64=4000, batch256=2500),
    )
    text = "\n".join(peer_table(results))
    assert "| c=1 p50 ms | 1.00 | 2.00 (digits 2.0×) |" in text
    assert "| c=64 req/s | 2,000 | 4,000 (digits **0.50×**) |" in text
    assert "behind on: c=8 req/s vs MLServer; c=64 req/s vs MLServer" in text
    assert peer_table(_results(digits=_server(1.0, 1000))) == []  # no peer, no table
