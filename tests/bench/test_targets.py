"""Issues 14 and 23's targets, the peers' and the protocols' tables are computed from the
run's own figures."""

from __future__ import annotations

from typing import Any

from bench.targets import peer_table, protocol_table, targets


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
        digits=_server(c1_p50=0.5, c64=5000, batch256=7500),
        reference=_server(c1_p50=0.3, c64=6000),
    )
    met = {goal: ok for goal, _, _, ok in targets(results)}
    assert met["c=64 throughput vs the reference app"]  # 0.83 ≥ 0.8
    assert not met["c=1 p50 vs the reference app"]  # 1.67 > 1.6
    assert met["HTTP batch 256 vs the bare interpreter (batch 256, 1 thread)"]  # 0.75 ≥ 0.7
    assert met["ready after start"] and met["RSS idle, largest process"] and met["errors"]
    results["http"]["digits"]["single"]["64"]["errors"] = 3
    assert not {goal: ok for goal, _, _, ok in targets(results)}["errors"]
    results["http"]["digits"]["batch"]["256"]["images_per_s"] = 6000  # 0.6 < 0.7
    results["http"]["reference"]["single"]["64"]["throughput"] = 6500  # 0.77 < 0.8
    met = {goal: ok for goal, _, _, ok in targets(results)}
    assert not met["HTTP batch 256 vs the bare interpreter (batch 256, 1 thread)"]
    assert not met["c=64 throughput vs the reference app"]


def _form(c1_p50: float, c64: float) -> dict[str, Any]:
    run = {"errors": 0, "requests": 100}
    return {
        "1": {**run, "p50_ms": c1_p50, "throughput": 1000 / c1_p50},
        "64": {**run, "p50_ms": 10 * c1_p50, "throughput": c64},
    }


def test_protocol_targets_and_table_are_ratios_to_v1_on_the_same_server() -> None:
    forms = {
        "v1_json": _form(0.40, 4000),
        "v2_binary_bytes": _form(0.48, 3300),  # 1.2× ≤ 1.25×, 0.825× ≥ 0.8×
        "v2_binary_uint8": _form(0.52, 4400),  # 1.3× > 1.25×, 1.1×
        "grpc_bytes": _form(0.90, 3000),  # no c=1 target; 0.75× < 0.8×
    }
    results = {**_results(digits=_server(0.4, 4000)), "protocols": {"forms": forms}}
    met = {goal: ok for goal, _, _, ok in targets(results)}
    assert met["/v2 binary BYTES: c=1 p50 vs /v1 JSON"]
    assert met["/v2 binary BYTES: c=64 throughput vs /v1 JSON"]
    assert not met["/v2 binary UINT8: c=1 p50 vs /v1 JSON"]
    assert met["/v2 binary UINT8: c=64 throughput vs /v1 JSON"]
    assert not met["gRPC BYTES: c=64 throughput vs /v1 JSON"]
    assert "gRPC BYTES: c=1 p50 vs /v1 JSON" not in met
    forms["grpc_bytes"]["64"]["errors"] = 2
    assert not {goal: ok for goal, _, _, ok in targets(results)}["errors"]
    table = protocol_table(results)
    assert table[2] == "| /v1 JSON | 0.40 | 4,000 | 1.00× | 1.00× |"
    assert "| gRPC BYTES | 0.90 | 3,000 | 2.25× | 0.75× |" in table
    assert protocol_table(_results(digits=_server(0.4, 4000))) == []


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
