"""Mask propagation with any model behind the VOS interface (memory every few frames, top-k reads, soft
aggregation of several objects, frames padded to the model's stride), and the two-shot recipe's pseudo-label
bank built from four directional passes per video."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional
from tqdm.auto import tqdm

from common.config import bounded
from papers.two_shot_vos.data import Video, save_index_mask
from papers.two_shot_vos.interface import VOSModel, soft_aggregate
from papers.two_shot_vos.padding import pad_to_stride, unpad
from papers.two_shot_vos.sampling import normalize


@dataclass
class InferenceConfig:
    top_k: int = bounded(20, minimum=1)  # memory entries each query position reads (STCN: 20)
    mem_every: int = bounded(5, minimum=1)  # a predicted frame joins the memory every this many frames (STCN: 5)
    amp: bool = False  # float16 autocast on CUDA (STCN's eval_davis.py --amp); ignored on CPU


def object_ids(mask: np.ndarray) -> list[int]:
    """The objects a mask labels (0 is background, 255 void)."""
    return sorted(set(np.unique(mask).tolist()) - {0, 255})


class Propagation:
    """One pass over `order` (frame indices, forward or backward) of frames [T, 3, H, W], zero-padded to a
    multiple of the model's stride as STCN's `pad_divide_by` does. A seed frame's given mask enters the memory;
    every other frame of the pass is predicted from it. Each object is segmented from the first seed that labels
    it on, with a memory of its own from there (STCN's per-object memory banks on YouTube-VOS); an object no seed
    labels is never segmented (the official bank passes propagate only the objects labeled at their seed)."""

    def __init__(self, model: VOSModel, frames: torch.Tensor, settings: InferenceConfig):
        self.model, self.settings = model, settings
        self.frames, self.padding = pad_to_stride(frames, model.stride)
        self.objects: list[int] = []  # the objects segmented so far, in the order they were given
        self.keys: list[torch.Tensor] = []  # [1, C_k, N] of every memory frame
        self.values: dict[int, list[torch.Tensor]] = {}  # object -> [C_v, N] of the memory frames since its seed

    def _remember(self, frame: torch.Tensor, keys, probabilities: torch.Tensor) -> None:
        """Add the frame to the memory with each object's value from its (soft) mask [1 + K, H, W]."""
        count = len(self.objects)
        repeated = keys.select(torch.zeros(count, dtype=torch.long, device=frame.device))
        masks = probabilities[1:].unsqueeze(1)  # [K, 1, H, W]
        others = masks.sum(0, keepdim=True) - masks
        values = self.model.encode_value(frame.expand(count, -1, -1, -1), repeated, masks, others).flatten(2)
        self.keys.append(keys.key.flatten(2))
        for row, obj in enumerate(self.objects):
            self.values.setdefault(obj, []).append(values[row])

    def _predict(self, keys) -> torch.Tensor:
        """Probabilities [1 + K, H, W] of the objects so far; objects with as many memory frames share one read."""
        groups: dict[int, list[int]] = {}
        for row, obj in enumerate(self.objects):
            groups.setdefault(len(self.values[obj]), []).append(row)
        probabilities = [torch.empty(0)] * len(self.objects)
        for length, rows in groups.items():
            memory_keys = torch.cat(self.keys[-length:], dim=2)  # [1, C_k, N]: one affinity for the group
            memory_values = torch.stack([torch.cat(self.values[self.objects[row]], dim=1) for row in rows])
            readout = self.model.read_memory(memory_keys, memory_values, keys, self.settings.top_k)
            for row, probability in zip(rows, torch.sigmoid(self.model.decode(readout, keys)), strict=True):
                probabilities[row] = probability[0]
        return torch.softmax(soft_aggregate(torch.stack(probabilities)[None]), dim=1)[0]

    def _given(self, mask: np.ndarray, predicted: torch.Tensor | None) -> torch.Tensor:
        """Probabilities at a seed frame, as STCN's `interact`: the objects it labels take its mask (new ones join
        the segmented objects); the others keep their prediction outside its labeled pixels."""
        labels = pad_to_stride(torch.as_tensor(mask.astype(np.int64), device=self.frames.device), self.model.stride)[0]
        labeled = object_ids(mask)
        self.objects += [obj for obj in labeled if obj not in self.objects]
        if not self.objects:  # a seed without objects: background everywhere
            return torch.ones((1, *labels.shape), device=labels.device)
        rows = []
        for row, obj in enumerate(self.objects):
            if obj in labeled:
                rows.append((labels == obj).float())
            elif predicted is not None and row + 1 < len(predicted):
                rows.append(torch.where((labels > 0) & (labels != 255), 0.0, predicted[row + 1]))
            else:
                rows.append(torch.zeros(labels.shape, device=labels.device))
        return torch.softmax(soft_aggregate(torch.stack(rows)[None]), dim=1)[0]

    @torch.no_grad()
    def run(self, order: list[int], seeds: dict[int, np.ndarray]) -> tuple[list[int], dict[int, torch.Tensor]]:
        """The objects segmented (sorted) and the probabilities [1 + K, H, W] over background and them of every
        frame of `order` from the first seed on, at the frames' unpadded size (0 for an object before its seed).
        `seeds`: frame index -> index mask at the frames' size."""
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.settings.amp and self.frames.is_cuda):
            outputs = self._pass(order, seeds)
        objects = sorted(self.objects)
        return objects, {index: self._in_order(objects, *output) for index, output in outputs.items()}

    def _pass(self, order: list[int], seeds: dict[int, np.ndarray]) -> dict[int, tuple[list[int], torch.Tensor]]:
        """frame index -> (the objects segmented then, their probabilities) over the pass."""
        outputs: dict[int, tuple[list[int], torch.Tensor]] = {}
        since_memory = None  # frames of the pass since the last one added to the memory
        for index in order:
            if since_memory is None and index not in seeds:
                continue
            frame = self.frames[index : index + 1]
            keys = self.model.encode_key(frame)
            probabilities = self._predict(keys) if self.objects else None
            if index in seeds:
                probabilities = self._given(seeds[index], probabilities)
            elif probabilities is None:  # nothing labeled yet: background
                probabilities = torch.ones((1, *frame.shape[-2:]), device=frame.device)
            outputs[index] = (list(self.objects), probabilities)
            since_memory = 0 if since_memory is None else since_memory + 1
            if self.objects and (index in seeds or since_memory >= self.settings.mem_every):
                self._remember(frame, keys, probabilities)
                since_memory = 0
        return outputs

    def _in_order(self, objects: list[int], present: list[int], probabilities: torch.Tensor) -> torch.Tensor:
        ordered = torch.zeros((1 + len(objects), *probabilities.shape[1:]), device=probabilities.device)
        ordered[0] = probabilities[0].float()
        for row, obj in enumerate(present, start=1):
            ordered[1 + objects.index(obj)] = probabilities[row].float()
        return unpad(ordered, self.padding)


def to_index_mask(probabilities: torch.Tensor, objects: list[int]) -> np.ndarray:
    """Argmax over background + objects, as object indices."""
    labels = np.asarray([0, *objects], dtype=np.uint8)
    return labels[probabilities.argmax(0).cpu().numpy()]


def resized_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An index mask at `size` ([H, W]), nearest neighbour."""
    if mask.shape == tuple(size):
        return mask
    return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


def segment_video(
    model: VOSModel, frames: torch.Tensor, given: dict[int, np.ndarray], settings: InferenceConfig
) -> np.ndarray:
    """Semi-supervised VOS: index masks [T, H, W] at the size of the given annotations (`given`: frame index ->
    index mask; DAVIS gives the first frame's, YouTube-VOS each object's first appearance), propagated forward
    over `frames` [T, 3, h, w] (the model's working size). As STCN's evaluation, the probabilities are resized
    to the annotations' size bilinearly before the argmax; frames before the first annotation are background."""
    native = next(iter(given.values())).shape
    masks = np.zeros((len(frames), *native), dtype=np.uint8)
    working = tuple(frames.shape[-2:])
    seeds = {t: resized_mask(mask.astype(np.uint8), working) for t, mask in given.items()}
    objects, outputs = Propagation(model, frames, settings).run(list(range(len(frames))), seeds)
    for index, probabilities in outputs.items():
        if probabilities.shape[-2:] != native:
            probabilities = functional.interpolate(probabilities[None], native, mode="bilinear", align_corners=False)[0]
        masks[index] = to_index_mask(probabilities, objects)
    return masks


def bank_sources(length: int, first: int, second: int) -> dict[str, tuple[list[int], int, range]]:
    """The four passes of the bank and the frames each one supplies (the official merge rule):
    before the first labeled frame, the backward pass from it alone; between the two, the first half from the
    forward pass from the first, the second half from the backward pass from the second; from the second on,
    the forward pass from it alone. Each pass stops where its frames end (later frames would be discarded).
    name -> (frame order, seed frame, frames it supplies)."""
    middle = first + (second - first - 1) // 2
    return {
        "backward_from_first": (list(range(first, -1, -1)), first, range(0, first)),
        "forward_from_first": (list(range(first, middle + 1)), first, range(first, middle + 1)),
        "backward_from_second": (list(range(second, middle, -1)), second, range(middle + 1, second)),
        "forward_from_second": (list(range(second, length)), second, range(second, length)),
    }


def build_bank(model: VOSModel, videos: list[Video], folder: Path, settings: InferenceConfig, device, progress=True):
    """Pseudo labels of every frame of every two-shot video, written as palette PNGs in DAVIS layout
    (<folder>/<video>/<frame>.png). Returns the number of frames written."""
    written = 0
    for video in tqdm(videos, desc="pseudo-label bank", disable=not progress):
        first, second = video.labeled
        frames = normalize(video.frames).to(device)
        merged: dict[int, np.ndarray] = {}
        for order, seed, supplies in bank_sources(len(video.frames), first, second).values():
            objects, outputs = Propagation(model, frames, settings).run(order, {seed: video.masks[seed]})
            merged.update({t: to_index_mask(outputs[t], objects) for t in supplies})
        out = folder / video.name
        out.mkdir(parents=True, exist_ok=True)
        for index, mask in merged.items():
            save_index_mask(out / f"{video.frame_names[index]}.png", mask)
        written += len(merged)
    return written
