"""mode=predict for TWIN and TWIN-V2: score a split's impressions with a trained model and write them as a CSV of
KuaiRand's ids (user_id, video_id) and the click probability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from papers.twin.ids import DataIds

PREDICTIONS_CSV = "predictions.csv"


def raw_ids_of_samples(samples: pd.DataFrame, rows: np.ndarray, ids: DataIds) -> tuple[np.ndarray, np.ndarray]:
    """The KuaiRand user_id and video_id of the sample rows `rows`, read through the data's own indices."""
    chosen = samples.iloc[rows]
    return ids.users[chosen["user"].to_numpy() - 1], ids.videos[chosen["item"].to_numpy() - 1]


def write_predictions(path: Path, user_ids: np.ndarray, video_ids: np.ndarray, scores: np.ndarray) -> Path:
    """One row per impression: user_id, video_id, score (the predicted click probability)."""
    frame = pd.DataFrame({"user_id": user_ids, "video_id": video_ids, "score": scores.astype(np.float64)})
    frame.to_csv(path, index=False, float_format="%.6f")
    return path
