"""Mask propagation with any model behind the VOS interface (memory every few frames, top-k reads, soft
aggregation of several objects), and the two-shot recipe's pseudo-label bank built from four directional
passes per video."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common.config import bounded
from papers.two_shot_vos.data import Video, save_index_mask
from papers.two_shot_vos.interface import VOSModel, soft_aggregate
from papers.two_shot_vos.sampling import normalize


@dataclass
class InferenceConfig:
    top_k: int = bounded(20, minimum=1)  # memory entries each query position reads (STCN: 20)
    mem_every: int = bounded(5, minimum=1)  # a predicted frame joins the memory every this many frames (STCN: 5)


class Propagation:
    """One pass over `order` (frame indices, forward or backward): a seed frame's mask is taken as given and
    joins the memory; every later frame of the pass is predicted from the memory."""

    def __init__(self, model: VOSModel, frames: torch.Tensor, objects: list[int], settings: InferenceConfig):
        self.model, self.frames, self.objects, self.settings = model, frames, objects, settings
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def _remember(self, frame: torch.Tensor, keys, probabilities: torch.Tensor) -> None:
        """Add the frame to the memory with each object's value from its (soft) mask."""
        count = len(self.objects)
        repeated = keys.select(torch.zeros(count, dtype=torch.long, device=frame.device))
        masks = probabilities[1:].unsqueeze(1)  # [K, 1, H, W]
        others = masks.sum(0, keepdim=True) - masks
        values = self.model.encode_value(frame.expand(count, -1, -1, -1), repeated, masks, others)
        self.keys.append(keys.key.flatten(2))
        self.values.append(values.flatten(2))

    def _predict(self, keys) -> torch.Tensor:
        count = len(self.objects)
        repeated = keys.select(torch.zeros(count, dtype=torch.long, device=keys.key.device))
        memory_keys = torch.cat(self.keys, dim=2).expand(count, -1, -1)
        readout = self.model.read_memory(memory_keys, torch.cat(self.values, dim=2), repeated, self.settings.top_k)
        probabilities = torch.sigmoid(self.model.decode(readout, repeated))  # [K, 1, H, W]
        return torch.softmax(soft_aggregate(probabilities.transpose(0, 1)), dim=1)[0]

    @torch.no_grad()
    def run(self, order: list[int], seeds: dict[int, np.ndarray]) -> dict[int, torch.Tensor]:
        """Probabilities [1 + K, H, W] (background first) of every frame of `order` from the first seed on."""
        outputs: dict[int, torch.Tensor] = {}
        last_memory = None
        for position, index in enumerate(order):
            if last_memory is None and index not in seeds:
                continue
            frame = self.frames[index : index + 1]
            keys = self.model.encode_key(frame)
            if index in seeds:
                one_hot = torch.stack([torch.as_tensor(seeds[index] == obj) for obj in self.objects]).float()
                probabilities = torch.softmax(soft_aggregate(one_hot[None].to(frame.device)), dim=1)[0]
                if last_memory is not None:  # a later annotation: it replaces the prediction where it labels
                    given = torch.as_tensor(seeds[index] > 0, device=frame.device)
                    probabilities = torch.where(given, probabilities, self._predict(keys))
            else:
                probabilities = self._predict(keys)
            outputs[index] = probabilities
            if index in seeds or position - last_memory >= self.settings.mem_every:
                self._remember(frame, keys, probabilities)
                last_memory = position
        return outputs


def to_index_mask(probabilities: torch.Tensor, objects: list[int]) -> np.ndarray:
    """Argmax over background + objects, as object indices."""
    labels = np.asarray([0, *objects], dtype=np.uint8)
    return labels[probabilities.argmax(0).cpu().numpy()]


def segment_video(model: VOSModel, frames: torch.Tensor, first_mask: np.ndarray, settings: InferenceConfig):
    """Semi-supervised VOS: the first frame's mask given, every frame predicted forward. [T, H, W] indices."""
    objects = sorted(set(np.unique(first_mask).tolist()) - {0, 255})
    if not objects:
        return np.zeros((len(frames), *first_mask.shape), dtype=np.uint8)
    outputs = Propagation(model, frames, objects, settings).run(list(range(len(frames))), {0: first_mask})
    return np.stack([to_index_mask(outputs[t], objects) for t in range(len(frames))])


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
        objects = video.objects
        frames = normalize(video.frames).to(device)
        merged: dict[int, np.ndarray] = {}
        for order, seed, supplies in bank_sources(len(video.frames), first, second).values():
            outputs = Propagation(model, frames, objects, settings).run(order, {seed: video.masks[seed]})
            merged.update({t: to_index_mask(outputs[t], objects) for t in supplies})
        out = folder / video.name
        out.mkdir(parents=True, exist_ok=True)
        for index, mask in merged.items():
            save_index_mask(out / f"{video.frame_names[index]}.png", mask)
        written += len(merged)
    return written
