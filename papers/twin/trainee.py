"""The training logic of TWIN's CTR models (TWIN, its baselines and TWIN-V2) on lifelong-behavior data, as a trainee
the shared Trainer fits: TWIN's task trains one, TWIN-V2's stages train two (TWIN for the item embeddings, then
TWIN-V2 on the virtual items), and mode=predict rebuilds one to load a finished run's weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from common.distributed import DistributedContext
from common.metrics import auc, gauc, logloss
from common.task import embedding_and_dense_groups
from papers.twin.data import LifelongData
from papers.twin.model import LifelongCTRModel, TwinModelConfig, click_loss
from papers.twin.retrieval import ConsistencyPreservedGSU


class LifelongCTRTrainee:
    """One model of `model_config` on `data`'s vocabulary; `fixed_metrics` are figures of the data the model reads
    (e.g. TWIN-V2's compression), reported beside every evaluation."""

    def __init__(
        self,
        context: DistributedContext,
        model_config: TwinModelConfig,
        data: LifelongData | None = None,
        fixed_metrics: dict[str, float] | None = None,
        model_name: str | None = None,
    ):
        self.context, self.model_config, self.data = context, model_config, data
        self.fixed_metrics = fixed_metrics or {}
        self.model_name = model_name or model_config.name  # the progress bar's name

    def build_model(self) -> LifelongCTRModel:
        data = self.data
        tables = {"item_author": data.item_author, "item_tag": data.item_tag, "item_duration": data.item_duration}
        return LifelongCTRModel(self.model_config, data.vocabulary, tables)

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return embedding_and_dense_groups(model)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        logits, auxiliary = model(batch)
        return click_loss(logits, auxiliary, batch["label"], self.model_config.aux_loss_weight)

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor], update: Callable) -> dict[str, float]:
        return update(lambda: self.loss(model, batch))

    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        core = model.module if hasattr(model, "module") else model
        logits, _, selection = core.score(batch)
        return {
            "probability": torch.sigmoid(logits.float()),
            "label": batch["label"],
            "user": batch["user"],
            "gsu_esu_overlap": core.gsu_esu_overlap(batch, selection),
        }

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        labels, scores = outputs["label"], outputs["probability"]
        result = {
            "auc": auc(labels, scores),
            "gauc": gauc(labels, scores, outputs["user"]),
            "logloss": logloss(labels, scores),
        }
        overlap = outputs["gsu_esu_overlap"]
        if not np.all(np.isnan(overlap)):
            result["gsu_esu_overlap"] = float(np.nanmean(overlap))
        return {**result, **self.fixed_metrics}

    def on_train_step(self, model: nn.Module, step: int) -> None:
        retriever = model.retriever
        refresh = self.model_config.gsu_cache_refresh_steps
        if isinstance(retriever, ConsistencyPreservedGSU) and retriever.use_cache and step % refresh == 0:
            retriever.refresh_cache(model.features)


def item_embeddings(model: LifelongCTRModel) -> np.ndarray:
    """K_h of every item of the model's vocabulary: [items, H] (what TWIN-V2 clusters)."""
    with torch.no_grad():
        items = torch.arange(model.features.item.num_embeddings, device=next(model.parameters()).device)
        return model.features.inherent(items).float().cpu().numpy()
