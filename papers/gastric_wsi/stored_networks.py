"""The weights of the networks a run trains outside the shared Trainer (network 1, network 3) and the slide
decision's operating points, kept in their stage's directory as the Trainer keeps network 2's: the state dict in
`<stage dir>/checkpoints/last.pt` (written atomically), so `common.checkpoint.trained_weights` reads any of them."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from common.atomic_files import write_json_atomic
from common.checkpoint import save_atomic, trained_weights
from common.errors import DatasetError

OPERATING_POINTS_FILE = "operating_points.json"


def save_weights(model: nn.Module, directory: Path) -> None:
    save_atomic({"model": model.state_dict()}, Path(directory) / "checkpoints" / "last.pt")


def load_weights(model: nn.Module, directory: Path) -> nn.Module:
    """`model` with the weights a finished stage left in `directory`, in evaluation mode."""
    try:
        model.load_state_dict(trained_weights(directory))
    except RuntimeError as error:
        raise DatasetError(f"the weights in {directory} do not fit the trained run's config ({error}).") from None
    return model.eval()


def save_operating_points(thresholds: dict[str, float], directory: Path) -> None:
    """The decision thresholds chosen on the validation slides, by metric prefix ("" network 3, "max_pool_")."""
    write_json_atomic(Path(directory) / OPERATING_POINTS_FILE, thresholds)


def load_operating_points(directory: Path) -> dict[str, float]:
    path = Path(directory) / OPERATING_POINTS_FILE
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: {directory} is not the slide stage of a finished run.")
    return json.loads(path.read_text(encoding="utf-8"))
