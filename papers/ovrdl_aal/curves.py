"""Validation AUC over training steps, per stage, across runs: `python -m papers.ovrdl_aal.curves <run dirs>
--out <png>` reads each run's `<stage>/history.json` and draws one panel per stage (one line per run, the
identity's training loss of stage 1 beside it), so the README can show that the models learn rather than
memorize and where each stage's selected checkpoint lies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common.plots import pyplot

PANELS = (("ovrdl", "valid/auc"), ("aal", "valid/auc"), ("ovrdl", "train/task_identity"))
TITLES = ("stage 1 (OVRDL): validation AUC", "stage 2 (AAL): validation AUC", "stage 1: identity training loss")


def series(run: Path, stage: str, name: str) -> list[tuple[int, float]]:
    path = run / stage / "history.json"
    if not path.is_file():
        return []
    return [(entry["step"], entry[name]) for entry in json.loads(path.read_text()) if name in entry]


def plot_curves(runs: list[Path], path: Path) -> Path:
    plt = pyplot()
    figure, axes = plt.subplots(1, len(PANELS), figsize=(4.5 * len(PANELS), 3.2))
    for axis, (stage, name), title in zip(axes, PANELS, TITLES, strict=True):
        for run in runs:
            points = series(run, stage, name)
            if points:
                axis.plot(*zip(*points, strict=True), marker=".", label=run.name)
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    print(plot_curves(arguments.runs, arguments.out))


if __name__ == "__main__":
    main()
