"""Network 2's training logic for the shared Trainer: the tiles of a set of slides as a batch source, and the
trainee that fits the multi-task patch network on them (CE + BCE + Dice) and scores tiles (patch AUC, pixel Dice
over the tiles whose lesion masks are known). `patch_predictions` is the one place a tile batch becomes patch
probabilities and lesion maps, in training's evaluation and in screening a folder alike."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from common.distributed import DistributedContext
from common.metrics.ranking import auc
from common.metrics.segmentation import dice
from papers.gastric_wsi.patch_network import (
    MASK_STRIDE,
    MultiTaskPatchNet,
    PatchNetConfig,
    lesion_targets,
    patch_loss,
    tile_tensor,
)


def dihedral(tiles: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each tile [n, S, S, 3] with its mask [n, S, S] turned by a random multiple of 90° and mirrored with
    probability 1/2 (one of the square's 8 symmetries; a section has no up or left), drawing from numpy's global
    generator (which the runner seeds)."""
    turns, mirrors = np.random.randint(4, size=len(tiles)), np.random.randint(2, size=len(tiles))
    turned_tiles, turned_masks = np.empty_like(tiles), np.empty_like(masks)  # every row is written below
    for index, (turn, mirror) in enumerate(zip(turns, mirrors, strict=True)):
        tile, mask = np.rot90(tiles[index], turn), np.rot90(masks[index], turn)
        turned_tiles[index], turned_masks[index] = (tile[:, ::-1], mask[:, ::-1]) if mirror else (tile, mask)
    return turned_tiles, turned_masks


class TileSource:
    """Tiles of a set of slides with their patch labels and lesion masks; `slide` indexes the task's slides,
    `known` marks the tiles whose masks are known (negative slides, annotated positive ones); `augment`, if given,
    transforms each batch's tiles; `turn`, each batch's tiles and masks alike by `dihedral`."""

    def __init__(self, tiles: np.ndarray, masks: np.ndarray, labels: np.ndarray, slide: np.ndarray, split: np.ndarray,
                 known: np.ndarray, augment: Callable[[np.ndarray], np.ndarray] | None = None,
                 turn: bool = False):  # fmt: skip
        self.tiles, self.masks, self.labels, self.slide, self.split = tiles, masks, labels, slide, split
        self.known, self.augment = known, augment  # augment: applied to a batch's uint8 tiles (stain augmentation)
        self.turn = turn

    def __len__(self) -> int:
        return len(self.tiles)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        tiles, masks = self.tiles[indices], self.masks[indices]
        if self.turn:
            tiles, masks = dihedral(tiles, masks)
        return {
            "tiles": tile_tensor(self.augment(tiles) if self.augment else tiles),
            "masks": torch.from_numpy(masks.astype(np.float32)),
            "labels": torch.from_numpy(self.labels[indices]).long(),
            "slide": torch.from_numpy(self.slide[indices]),
            "split": torch.from_numpy(self.split[indices]),
            "known": torch.from_numpy(self.known[indices]),
        }


def patch_predictions(model: nn.Module, tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalized tiles [B, 3, S, S] -> lesion probability [B] and lesion map [B, S/4, S/4]; the classification-only
    network's map is the patch's probability over the whole patch."""
    output = model(tiles)
    probability = torch.softmax(output["class_logits"].float(), dim=1)[:, 1]
    side = tiles.shape[-1] // MASK_STRIDE
    if "mask_logits" in output:
        return probability, torch.sigmoid(output["mask_logits"].float())
    return probability, probability[:, None, None].expand(-1, side, side)


def patch_metrics(outputs: dict[str, np.ndarray], lesion_threshold: float) -> dict[str, float]:
    """Patch AUC and pixel Dice over the tiles whose lesion masks are known; each only where it means something:
    AUC with tiles of both classes, Dice with annotated lesion pixels (an empty-against-empty Dice of 1 would
    hide that no lesion was annotated, e.g. under an unmapped class name)."""
    known = outputs["known"] > 0.5
    labels, lesion = outputs["label"][known], outputs["lesion_map"][known] >= lesion_threshold
    truth = outputs["truth_map"][known]
    result = {"patch_dice": dice(truth, lesion)} if truth.any() else {}
    if 0 < labels.sum() < len(labels):
        result["patch_auc"] = auc(labels, outputs["probability"][known])
    return result


class PatchTrainee:
    """Network 2 for `StageContext.fit`: the model, its loss and its per-tile outputs."""

    def __init__(self, context: DistributedContext, config: PatchNetConfig, lesion_threshold: float):
        self.context, self.config, self.lesion_threshold = context, config, lesion_threshold

    @property
    def model_name(self) -> str:
        return "multitask_patch_net" if self.config.segmentation else "classification_patch_net"

    def build_model(self) -> MultiTaskPatchNet:
        return MultiTaskPatchNet(self.config)

    def parameter_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"dense": [p for p in model.parameters() if p.requires_grad]}

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        return patch_loss(model(batch["tiles"]), batch["labels"], batch["masks"], self.config)

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor], update) -> dict[str, float]:
        return update(lambda: self.loss(model, batch))

    def predict(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        probability, lesion_map = patch_predictions(model, batch["tiles"])
        truth = lesion_targets(batch["masks"], lesion_map.shape[-1])
        return {
            "probability": probability,
            "lesion_map": lesion_map.reshape(len(probability), -1),
            "truth_map": truth.reshape(len(probability), -1),
            "label": batch["labels"].float(),
            "slide": batch["slide"].float(),
            "split": batch["split"].float(),
            "known": batch["known"].float(),
        }

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        return patch_metrics(outputs, self.lesion_threshold)

    def on_train_step(self, model: nn.Module, step: int) -> None:
        return None
