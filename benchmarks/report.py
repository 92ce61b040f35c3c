"""A run as a markdown table and as JSON, written to the results folder."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec

from benchmarks.figures import Figure, RunResult, format_number


def markdown(run: RunResult) -> str:
    """The run's figures as one markdown table, with the host, the references and the notes."""
    host = run.host
    lines = [
        f"# Conduit benchmark {run.started_at}",
        "",
        f"{host.cpus} CPUs (load {host.load_1m:.2f} at start), Python {host.python}, "
        f"Redis {host.redis}, commit {host.commit}; {run.duration_s:.0f} s in all.",
        "",
    ]
    if run.raw_limit is None:
        lines += ["No raw Redis limit was measured, so there are no ratios.", ""]
    else:
        lines += [
            f"Raw limit: {format_number(run.raw_limit.rate_per_s)} entries/s, one XADD round "
            f"trip {run.raw_limit.round_trip_ms:.3f} ms. *vs raw*: a rate as a fraction of that "
            "rate, a latency as a multiple of that round trip.",
            "",
        ]
    lines += [
        "| Scenario | Figure | Value | Unit | vs raw | Target | Met |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for scenario in run.scenarios:
        title = scenario.title
        if scenario.error is not None:
            lines.append(f"| {title} | **failed**: see below | | | | | |")
            continue
        for figure in scenario.figures:
            lines.append(_row(title, figure))
            title = ""
    lines.append("")
    for scenario in run.scenarios:
        if not scenario.notes and scenario.error is None:
            continue
        lines.append(f"**{scenario.title}** ({scenario.duration_s:.0f} s)")
        lines += [f"- {note}" for note in scenario.notes]
        if scenario.error is not None:
            lines += ["- failed:", "", "```", scenario.error, "```"]
        lines.append("")
    return "\n".join(lines)


def _row(title: str, figure: Figure) -> str:
    met = {None: "", True: "yes", False: "**no**"}[figure.met]
    cells = (
        title,
        figure.label,
        format_number(figure.value),
        figure.unit,
        _ratio(figure),
        "" if figure.target is None else str(figure.target),
        met,
    )
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _ratio(figure: Figure) -> str:
    if figure.ratio is None or math.isnan(figure.ratio):
        return ""
    if figure.kind == "latency":
        return f"{figure.ratio:.1f}x"
    return f"{figure.ratio:.3f}"


def write_results(run: RunResult, results_dir: Path) -> tuple[Path, Path]:
    """Write `<stamp>.json` and `<stamp>.md` into `results_dir`; their paths."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = run.started_at.replace(":", "-")
    json_path = results_dir / f"{stamp}.json"
    markdown_path = results_dir / f"{stamp}.md"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(run), indent=2) + b"\n")
    markdown_path.write_text(markdown(run), encoding="utf-8")
    return json_path, markdown_path
