"""Training on frame triplets, for any model behind the VOS interface: STCN's triplet pass (the first frame
with its given masks as memory, the second predicted and added to memory, the third predicted from both),
the bootstrapped cross-entropy with an ignore label, the EMA teacher and the pseudo-label rules of the
two-shot recipe (three-way 0.9 threshold in phase 1, 0.99 in-batch relabeling in phase 2)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from common.config import bounded
from papers.two_shot_vos.interface import VOSModel, soft_aggregate
from papers.two_shot_vos.padding import pad_to_stride, unpad

IGNORE = -1  # label of pixels that carry no supervision
RECIPES = ("two_shot", "phase1", "naive", "full")


@dataclass
class RecipeConfig:
    mode: str = bounded("two_shot", choices=RECIPES)
    phase1_steps: int = bounded(0, minimum=0)  # 0: as many as the run's trainer.max_steps
    # official 70k of 150k: phase 1 turns to semi triplets, phase 2 to relabeling
    warmup_fraction: float = bounded(0.467, minimum=0.0, maximum=1.0)
    bootstrap_start_fraction: float = bounded(0.133, minimum=0.0, maximum=1.0)  # official 20k of 150k: CE bootstraps
    bootstrap_end_fraction: float = bounded(0.467, minimum=0.0, maximum=1.0)  # official 70k of 150k: it reaches top_p
    top_p: float = bounded(0.15, above=0.0, maximum=1.0)  # fraction of the hardest pixels kept
    pseudo_threshold: float = bounded(0.9, minimum=0.0, maximum=1.0)  # phase 1, three-way
    relabel_threshold: float = bounded(0.99, minimum=0.0, maximum=1.0)  # phase 2, in-batch
    ema_alpha: float = bounded(0.995, minimum=0.0, maximum=1.0)


def bootstrapped_cross_entropy(logits: torch.Tensor, target: torch.Tensor, top_p: float) -> torch.Tensor:
    """Cross-entropy over the pixels whose label is not IGNORE, averaged over the hardest `top_p` fraction of
    them (top_p = 1: plain cross-entropy). logits [B, C, H, W], target [B, H, W]."""
    classes = logits.shape[1]
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, classes)
    flat_target = target.reshape(-1)
    valid = flat_target != IGNORE
    if not valid.any():
        return logits.sum() * 0.0  # keeps the graph; the official code would give NaN here
    losses = functional.cross_entropy(flat_logits[valid].float(), flat_target[valid], reduction="none")
    if top_p >= 1:
        return losses.mean()
    hardest, _ = torch.topk(losses, max(1, int(len(losses) * top_p)), sorted=False)
    return hardest.mean()


def bootstrap_fraction(step: int, start: int, end: int, top_p: float = 0.15) -> float:
    """STCN's schedule of the kept fraction: 1 before `start`, falling linearly to `top_p` at `end`."""
    if step < start:
        return 1.0
    if step > end:
        return top_p
    return top_p + (1 - top_p) * (end - step) / max(end - start, 1)


def segment_objects(
    model: VOSModel, memory_keys: torch.Tensor, memory_values: torch.Tensor, query, selector: torch.Tensor
):
    """Logits over background + 2 objects [B, 3, H, W] and the objects' probabilities [B, 2, H, W] at the
    query: each object read from its own memory values [B, 2, C_v, N] with the shared keys, decoded, then
    soft-aggregated; an absent second object (selector 0) has probability 0."""
    probabilities = (
        torch.cat(
            [
                torch.sigmoid(model.decode(model.read_memory(memory_keys, memory_values[:, k], query, None), query))
                for k in range(2)
            ],
            dim=1,
        )
        * selector[:, :, None, None]
    )
    logits = soft_aggregate(probabilities)
    return logits, torch.softmax(logits, dim=1)[:, 1:]


def _values(model: VOSModel, frames, keys, masks: torch.Tensor) -> torch.Tensor:
    """Memory values [B, 2, C_v, N] of the two objects, each with the other as `others`."""
    first = model.encode_value(frames, keys, masks[:, 0:1], masks[:, 1:2])
    second = model.encode_value(frames, keys, masks[:, 1:2], masks[:, 0:1])
    return torch.stack([first.flatten(2), second.flatten(2)], dim=1)


def triplet_forward(model: VOSModel, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """STCN's training pass over frames [B, 3, 3, H, W]: memory = frame 0 with its masks [B, 2, H, W];
    frame 1 predicted and encoded with its predicted masks; frame 2 predicted from both. Frames and masks are
    zero-padded to a multiple of the model's stride and the outputs cropped back."""
    frames, padding = pad_to_stride(batch["frames"], model.stride)
    first_masks = pad_to_stride(batch["first_masks"], model.stride)[0]
    selector, batch_size = batch["selector"], len(frames)
    keys = model.encode_key(frames.flatten(0, 1))  # [B*3, ...], frame-major within each sample
    key_of = [keys.select(torch.arange(batch_size, device=frames.device) * 3 + t) for t in range(3)]
    values = _values(model, frames[:, 0], key_of[0], first_masks)
    logits1, masks1 = segment_objects(model, key_of[0].key.flatten(2), values, key_of[1], selector)
    values1 = _values(model, frames[:, 1], key_of[1], masks1)
    memory_keys = torch.cat([key_of[0].key.flatten(2), key_of[1].key.flatten(2)], dim=2)
    logits2, masks2 = segment_objects(model, memory_keys, torch.cat([values, values1], dim=3), key_of[2], selector)
    return {
        "logits": unpad(torch.stack([logits1, logits2], dim=1), padding),
        "masks": unpad(torch.stack([masks1, masks2], dim=1), padding),
    }


def triplet_loss(
    output: dict[str, torch.Tensor], target: torch.Tensor, selector: torch.Tensor, top_p: float
) -> torch.Tensor:
    """Bootstrapped CE on frames 1 and 2 (frame 0 is the reference and never in the loss), as the official
    LossComputer: per sample (its hardest pixels among its own), over background and the first object only
    where the sample has no second one, averaged over the batch. target [B, 3, H, W] with 0 background, 1 and 2
    the objects, IGNORE unknown."""
    total = output["logits"].new_zeros(())
    for row in range(len(target)):
        classes = 3 if selector[row, 1] > 0.5 else 2
        for t in range(2):
            logits = output["logits"][row : row + 1, t, :classes]
            total = total + bootstrapped_cross_entropy(logits, target[row : row + 1, t + 1], top_p)
    return total / len(target)


def three_way_pseudo_labels(masks: torch.Tensor, selector: torch.Tensor, threshold: float) -> torch.Tensor:
    """Phase 1's labels of an unlabeled frame from the teacher's object probabilities [B, 2, H, W]: object k
    where p_k >= threshold, background where 1 - p_1 - p_2 >= threshold, IGNORE elsewhere."""
    labels = torch.full(masks.shape[:1] + masks.shape[2:], IGNORE, dtype=torch.long, device=masks.device)
    labels[(masks[:, 1] >= threshold) & (selector[:, 1] > 0.5)[:, None, None]] = 2
    labels[masks[:, 0] >= threshold] = 1
    labels[(1 - masks[:, 0] - masks[:, 1]) >= threshold] = 0
    return labels


def confident_relabel(target: torch.Tensor, masks: torch.Tensor, selector: torch.Tensor, threshold: float):
    """Phase 2's in-batch relabeling: where the model is at least `threshold` sure of a class, that class
    replaces the bank's label; elsewhere the bank's label stays. target [B, H, W] is changed in place."""
    target[(masks[:, 1] >= threshold) & (selector[:, 1] > 0.5)[:, None, None]] = 2
    target[masks[:, 0] >= threshold] = 1
    target[(1 - masks[:, 0] - masks[:, 1]) >= threshold] = 0
    return target


class TwoShotModel(nn.Module):
    """The trained VOS model (student), an optional EMA teacher (phase 1) and the optimizer-step count;
    all three are saved in checkpoints, so a resumed run continues the same schedules."""

    def __init__(self, student: VOSModel, teacher: bool):
        super().__init__()
        self.student = student
        self.teacher = copy.deepcopy(student).requires_grad_(False) if teacher else None
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return triplet_forward(self.student, batch)

    @torch.no_grad()
    def teacher_forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.teacher.eval()
        return triplet_forward(self.teacher, batch)

    @torch.no_grad()
    def after_step(self, ema_alpha: float) -> None:
        """Count the step and move the teacher: alpha = min(1 - 1/(step + 1), ema_alpha)."""
        if self.teacher is not None:
            alpha = min(1 - 1 / (int(self.step) + 1), ema_alpha)
            for teacher, student in zip(self.teacher.parameters(), self.student.parameters(), strict=True):
                teacher.mul_(alpha).add_(student.detach(), alpha=1 - alpha)
        self.step += 1
