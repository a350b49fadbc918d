"""Prints a finished run's metrics beside the numbers its paper reported for the same row."""

from __future__ import annotations

from pathlib import Path

from common.tables import load_reported


def comparison_table(experiment: str, reported_path: Path, record: dict) -> str:
    reported = load_reported(reported_path)
    paper = record["paper"]
    rows = [row for row in reported.rows if row.experiment == experiment]
    cited = [row for row in rows if row.metrics]
    ours = record["metrics"]
    lines = [f"\n{paper} / {experiment} on {record['dataset']} (seed {record['seed']})"]
    if not rows:
        lines.append("the paper reports no row for this experiment")
    lines += [
        f"{row.table}, row '{row.row}': no number of the paper is cited ({row.source})"
        for row in rows
        if not row.metrics
    ]
    if not cited:
        lines.append("our metrics:")
        lines += [f"  {name:<20} {value:.4f}" for name, value in ours.items()]
    for row in cited:
        lines.append(f"{row.table}, row '{row.row}' — paper on {row.dataset} ({row.source})")
        lines.append(f"  {'metric':<20} {'ours':>8} {'paper':>8}")
        for name in sorted(set(ours) | set(row.metrics)):
            mine = f"{ours[name]:.4f}" if name in ours else "—"
            theirs = f"{row.metrics[name]:.4f}" if name in row.metrics else "—"
            lines.append(f"  {name:<20} {mine:>8} {theirs:>8}")
    lines.append("(not the paper's data: see the paper README for the deviations)")
    return "\n".join(lines)
