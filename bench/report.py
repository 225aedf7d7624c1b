"""Turn a results dict (bench/run.py) into latest.md (tables, targets) and latest.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.targets import PEER_TITLES, peer_table, protocol_table, targets


def write_report(results: dict[str, Any], out: Path) -> str:
    markdown = render_markdown(results)
    (out / "latest.md").write_text(markdown)
    plot(results, out / "latest.png")
    return markdown


def _fmt(value: object, digits: int = 1) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "–" if value is None else str(value)


def _venvs(results: dict[str, Any]) -> str:
    seconds = results.get("venv_seconds") or 0
    return f", not counting {seconds:.0f} s creating peers' venvs" if seconds else ""


def render_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Run {machine['date']} on {machine['cores']} × {machine['cpu']}, Python "
        f"{machine['python']}; load average at start {machine['load_average_at_start']}; "
        f"at end {results.get('load_average_at_end', '?')}; "
        f"{results.get('seconds', '?')} s in all{' (--quick)' if results.get('quick') else ''}"
        f"{_venvs(results)}. "
        f"Load generator: {machine['load_generator']}, on the same cores. "
        f"Served model: `{results['served_model']}`.",
        "",
    ]
    rows = targets(results)
    if rows:
        lines += [
            "**Targets** (issues 14 and 23: digits with default settings; ratios to this "
            "run's reference app, floor and `/v1` JSON on the protocols' server)",
            "",
        ]
        lines += ["| goal | measured | target | met |", "|---|---|---|---|"]
        for what, measured, target, met in rows:
            lines.append(f"| {what} | {measured} | {target} | {'yes' if met else '**no**'} |")
        lines.append("")

    lines += ["**Floor** (bare LiteRT interpreter, 1 thread)", ""]
    lines += ["| model | batch | images/s | µs/image |", "|---|---:|---:|---:|"]
    for model, batches in results["floor"].items():
        for batch, figures in batches.items():
            lines.append(
                f"| `{model}` | {batch} | {_fmt(figures['images_per_s'], 0)} | "
                f"{_fmt(figures['us_per_image'])} |"
            )
    lines += ["", "**In-process pipeline** (decode + preprocess + inference, batch 1)", ""]
    lines += ["| upload | preprocess µs | total µs | images/s |", "|---|---:|---:|---:|"]
    for name, figures in results["pipeline"].items():
        lines.append(
            f"| {name} | {_fmt(figures['preprocess_us'])} | {_fmt(figures['total_us'])} | "
            f"{_fmt(figures['images_per_s'], 0)} |"
        )

    http = results.get("http", {})
    if http:
        lines += ["", "**HTTP, one 28×28 PNG per request** (medians of rounds)", ""]
        lines += [
            "| server | conc. | req/s | p50 ms | p90 ms | p99 ms | errors | client CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, figures in http.items():
            for concurrency, r in figures["single"].items():
                lines.append(
                    f"| {name} | {concurrency} | {_fmt(r['throughput'], 0)} | "
                    f"{_fmt(r['p50_ms'], 2)} | {_fmt(r['p90_ms'], 2)} | {_fmt(r['p99_ms'], 2)} | "
                    f"{r['errors']} | {_fmt(r['client_cpu'], 2)} |"
                )
        served = results["served_model"]
        floor256 = results["floor"][served]["256"]["images_per_s"]
        lines += ["", "**HTTP batch scoring** (one client, 28×28 PNGs)", ""]
        lines += [
            "| server | batch | images/s | of floor (batch 256) | p50 ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, figures in http.items():
            for size, r in figures["batch"].items():
                lines.append(
                    f"| {name} | {size} | {_fmt(r['images_per_s'], 0)} | "
                    f"{r['images_per_s'] / floor256:.0%} | {_fmt(r['p50_ms'], 2)} |"
                )
        lines += ["", "**Start-up and memory**", ""]
        lines += [
            "| server | processes | ready s | RSS idle MB | largest process MB "
            "| RSS under load MB |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, figures in http.items():
            lines.append(
                f"| {name} | {figures['processes']} | {_fmt(figures['ready_seconds'], 2)} | "
                f"{_fmt(figures['rss_idle_mb'])} | {_fmt(figures.get('rss_idle_largest_mb'))} | "
                f"{_fmt(figures.get('rss_load_mb'))} |"
            )
    protocols = protocol_table(results)
    if protocols:
        lines += [
            "",
            "**Protocols** (one digits server, one 28×28 PNG per request)",
            "",
        ]
        lines += protocols
    peers = peer_table(results)
    if peers:
        lines += [
            "",
            "**Peers** (the same preprocessing and images; the frameworks run the same "
            ".tflite, the seed's way the Keras .h5; in brackets how many times better "
            "digits is, bold when it is behind)",
            "",
        ]
        lines += peers
    versions = [
        f"{PEER_TITLES.get(name, name)} {peer['version']} (venv created in "
        f"{peer['venv_created_seconds']} s; 0 = cached)"
        for name, peer in results.get("peers", {}).items()
    ]
    if versions:
        lines += ["", "Peers' versions: " + ", ".join(versions) + "."]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    http = results.get("http", {})
    figure, (latency, batch) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (name, figures) in enumerate(http.items()):
        colour = colours[index % len(colours)]  # the same server, the same colour
        levels = [int(c) for c in figures["single"]]
        latency.plot(
            levels,
            [r["p50_ms"] for r in figures["single"].values()],
            "o-",
            color=colour,
            label=name,
        )
        if figures["batch"]:
            sizes = [int(s) for s in figures["batch"]]
            batch.plot(
                sizes,
                [r["images_per_s"] for r in figures["batch"].values()],
                "o-",
                color=colour,
                label=name,
            )
    served = results["served_model"]
    batch.axhline(
        results["floor"][served]["256"]["images_per_s"],
        color="grey",
        linestyle="--",
        label="floor (batch 256)",
    )
    latency.set(
        xscale="log",
        yscale="log",
        xlabel="concurrent connections",
        ylabel="latency p50 (ms)",
        title="Single image over HTTP",
    )
    batch.set(
        xscale="log",
        yscale="log",
        xlabel="images per request",
        ylabel="images/s",
        title="Batch scoring over HTTP",
    )
    for axis in (latency, batch):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
