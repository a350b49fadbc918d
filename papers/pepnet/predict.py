"""mode=predict's pieces: score a split with a trained model, write the scores as predictions.csv, and say how
many of the scored impressions carried ids the model never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from papers.pepnet.data import MultiDomainData

PREDICTIONS_CSV = "predictions.csv"


def write_predictions(path: Path, data: MultiDomainData, rows: np.ndarray, probabilities: np.ndarray) -> Path:
    """One line per impression: its user_id, video_id and tab (`domain`) as in the logs, and `score_<task>`, the
    predicted probability of every task."""
    frame = pd.DataFrame(
        {
            "user_id": data.log_ids["user_id"][rows],
            "video_id": data.log_ids["video_id"][rows],
            "domain": data.log_ids["tab"][rows],
            **{f"score_{task}": probabilities[:, index] for index, task in enumerate(data.task_names)},
        }
    )
    frame.to_csv(path, index=False, float_format="%.6g")
    return path


def unknown_note(unknown: dict[str, np.ndarray], rows: np.ndarray) -> str:
    """The share of the impressions `rows` whose id of each feature the model never saw (scored with the
    reserved unknown row)."""
    shares = {feature: float(mask[rows].mean()) for feature, mask in unknown.items() if mask[rows].any()}
    if not shares:
        return "every id was seen in training"
    listed = ", ".join(f"{feature} {share:.1%}" for feature, share in shares.items())
    return f"ids never seen in training (scored with the reserved unknown index 0): {listed}"
