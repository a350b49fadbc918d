"""Figures people would rather look at than read, written as PNG files."""

from __future__ import annotations

from pathlib import Path

from common.atomic_files import write_json_atomic

MAX_CURVE_PANELS = 12  # beyond it, per-cell metrics (e.g. PEPNet's 36 domain x task cells) are not drawn
CURVES_FILE, HISTORY_FILE = "training_curves.png", "training_history.json"


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, imported when a first figure is drawn: about 0.6 s that
    every run.py start, a config error's included, would otherwise pay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve_names(names: list[str], max_panels: int = MAX_CURVE_PANELS) -> list[str]:
    """The logged quantities drawn, at most `max_panels`: every train quantity, then the validation metrics
    with the fewest name parts first (aggregates such as `valid/gauc_mean` before `valid/gauc_tab0_is_like`),
    ties by name."""
    train = sorted(name for name in names if not name.startswith("valid/"))
    valid = sorted((name for name in names if name.startswith("valid/")), key=lambda name: (name.count("_"), name))
    return (train + valid)[:max_panels]


def plot_training_curves(history: list[dict], path: Path) -> Path | None:
    """One panel per logged quantity (train loss, validation metrics) against the step, at most
    MAX_CURVE_PANELS of them (`curve_names`); the title says how many more were logged."""
    logged = sorted({key for entry in history for key in entry if key != "step"})
    names = curve_names(logged)
    if not names:
        return None
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    plt = pyplot()
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        points = [(entry["step"], entry[name]) for entry in history if name in entry]
        axis.plot(*zip(*points, strict=True), marker="." if len(points) < 30 else None)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names) :]:
        axis.axis("off")
    if len(logged) > len(names):
        figure.suptitle(f"{len(logged) - len(names)} more logged quantities, not drawn")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_training_curves(history: list[dict], directory: Path) -> Path | None:
    """A training's curves in `directory`: the picture (CURVES_FILE, see `plot_training_curves`; its path, or None
    when nothing was logged) and every logged value by step (HISTORY_FILE), to plot or compare them elsewhere."""
    if history:
        write_json_atomic(directory / HISTORY_FILE, history, indent=1)
    return plot_training_curves(history, directory / CURVES_FILE)
