"""mode=predict's pieces: score a split with a trained model, write the scores as predictions.csv, and say how
many of the scored impressions carried ids the model never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from papers.pepnet.data import MultiDomainData, MultiDomainSplit

PREDICTIONS_CSV = "predictions.csv"


@torch.no_grad()
def predict_split(task, model: nn.Module, split: MultiDomainSplit, batch_size: int, device) -> dict[str, np.ndarray]:
    """`task.predict`'s outputs over the whole split, in its order."""
    model.to(device).eval()
    parts = []
    for start in range(0, len(split), batch_size):
        batch = split.batch(np.arange(start, min(start + batch_size, len(split))))
        outputs = task.predict(model, {name: value.to(device) for name, value in batch.items()})
        parts.append({name: value.cpu().numpy() for name, value in outputs.items()})
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


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
