"""What a trained run keeps for authenticating new images, and how their scores are written and scored.

A run's last stage writes each identity's EER threshold, chosen on the validation rows as the test metrics
chose it, to `thresholds.json`; mode=predict accepts an identity's claim when its score reaches that threshold.
`scores.csv` holds one row per image: its file, one score column per identity and the predicted identity.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.atomic_files import write_json_atomic
from common.errors import DatasetError
from common.metrics.ranking import auc
from common.metrics.verification import eer_threshold, far_frr, one_vs_rest, tar_at_far
from papers.ovrdl_aal.trainees import rows_by_split

THRESHOLDS_FILE = "thresholds.json"
SCORES_FILE = "scores.csv"


def identity_thresholds(outputs: dict[str, np.ndarray]) -> dict[int, float]:
    """Each identity's EER threshold on the validation rows of a test pass's outputs (as the test metrics set it)."""
    _, _, val_scores, val_labels = rows_by_split(outputs)
    identities = [int(i) for i in np.unique(val_labels) if np.any(val_labels != i)]
    return {i: eer_threshold(*one_vs_rest(val_scores, val_labels, i))[0] for i in identities}


def write_thresholds(thresholds: dict[int, float], directory: Path) -> Path:
    return write_json_atomic(directory / THRESHOLDS_FILE, {str(i): value for i, value in thresholds.items()})


def read_thresholds(directory: Path) -> dict[int, float]:
    path = directory / THRESHOLDS_FILE
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: {directory} is not the last stage of a finished OVRDL+AAL run.")
    return {int(i): float(value) for i, value in json.loads(path.read_text(encoding="utf-8")).items()}


def metrics_at_thresholds(scores: np.ndarray, labels: np.ndarray, thresholds: dict[int, float]) -> dict[str, float]:
    """The authentication metrics of labelled scores at the trained thresholds: means over the identities with
    genuine and impostor samples of one-vs-rest AUC, FAR, FRR and TAR at FAR = 1%; and top-1 accuracy."""
    metrics = {"accuracy": float(np.mean(scores.argmax(1) == labels))}
    identities = [i for i in thresholds if np.any(labels == i) and np.any(labels != i)]
    if not identities:
        return metrics
    rates = []
    for identity in identities:
        genuine, impostor = one_vs_rest(scores, labels, identity)
        far, frr = far_frr(genuine, impostor, thresholds[identity])
        rates.append(
            (auc((labels == identity).astype(int), scores[:, identity]), far, frr, tar_at_far(genuine, impostor))
        )
    means = np.mean(rates, axis=0)
    return {"auc": float(means[0]), "far": float(means[1]), "frr": float(means[2]), "tar_at_far1": float(means[3]),
            **metrics}  # fmt: skip


@torch.no_grad()
def batched_scores(model: nn.Module, inputs: torch.Tensor, device: torch.device, batch_size: int) -> np.ndarray:
    """model(inputs) in eval mode, `batch_size` rows at a time, as a numpy array."""
    model.eval()
    chunks = [model(inputs[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(inputs), batch_size)]
    return torch.cat(chunks).numpy()


def write_scores(path: Path, files: list[str], scores: np.ndarray) -> Path:
    """scores.csv: file, score_<identity> per identity, predicted_identity."""
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["file", *(f"score_{i}" for i in range(scores.shape[1])), "predicted_identity"])
        for name, row in zip(files, scores, strict=True):
            writer.writerow([name, *(f"{value:.6f}" for value in row), int(row.argmax())])
    return path
