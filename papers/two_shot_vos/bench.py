"""Two-shot VOS benchmarks (mode=bench): inference frames/s of the reduced and the full STCN, and
pseudo-label bank building frames/s, each against the plain forward pass (the key encoder over the same
frames, which any method pays); and training steps/s of the run's STCN with the speed options
(channels-last, bfloat16 autocast on CPU) against without them. Measured side by side in one process with
random weights."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from common.bench import BenchFigure, throughput_figure
from common.config import bounded
from papers.two_shot_vos.gpu_check import training_rate
from papers.two_shot_vos.inference import build_bank, segment_video
from papers.two_shot_vos.sampling import normalize
from papers.two_shot_vos.stcn import STCN


@dataclass
class VOSBenchConfig:
    videos: int = bounded(4, minimum=1)  # validation videos timed
    full: dict = field(
        default_factory=lambda: {"key_backbone": "resnet50", "value_dim": 512, "decoder_dims": [512, 256, 256]}
    )
    threads: int = bounded(0, minimum=0)  # 0: all cores
    train_steps: int = bounded(2, minimum=1)  # timed training steps per configuration (after one untimed)


def _rate(function, frames: int) -> float:
    start = time.perf_counter()
    function()
    return frames / (time.perf_counter() - start)


@torch.no_grad()
def _plain_forward_rate(model: STCN, videos) -> float:
    frames = sum(len(video.frames) for video in videos)
    return _rate(lambda: [model.encode_key(normalize(video.frames)) for video in videos], frames)


@torch.no_grad()
def _inference_rate(model: STCN, videos, settings) -> float:
    frames = sum(len(video.frames) for video in videos)
    run = [
        lambda video=video: segment_video(model, normalize(video.frames), {0: video.masks[0]}, settings)
        for video in videos
    ]
    return _rate(lambda: [step() for step in run], frames)


def run_benchmarks(task, settings: VOSBenchConfig) -> list[BenchFigure]:
    if settings.threads:
        torch.set_num_threads(settings.threads)
    task.prepare_data()
    videos = task.read_split(task.data_config.val_split)[: settings.videos]
    size = "x".join(map(str, videos[0].frames.shape[1:3]))
    figures = []
    configurations = {"reduced": task.model_config, "full": replace(task.model_config, **settings.full)}
    for name, config in configurations.items():
        torch.manual_seed(0)
        model = STCN(config).eval()
        plain = _plain_forward_rate(model, videos)
        inference = _inference_rate(model, videos, task.inference)
        reading = task.inference
        note = f"{config.key_backbone} keys, {size} frames, top-{reading.top_k}, memory every {reading.mem_every}"
        figures.append(
            throughput_figure(
                f"inference, {name} STCN", inference, "plain key-encoder forward", plain, note, "frames/s"
            )
        )
    torch.manual_seed(0)
    model = STCN(task.model_config).eval()
    two_shot = [replace(video, masks={t: video.masks[t] for t in (1, len(video.frames) - 2)}) for video in videos]
    frames = sum(len(video.frames) for video in two_shot)
    with tempfile.TemporaryDirectory() as folder:
        bank = _rate(lambda: build_bank(model, two_shot, Path(folder), task.inference, "cpu", progress=False), frames)
    plain = _plain_forward_rate(model, two_shot)
    note = "four passes per video, merged, written as PNGs"
    figures.append(
        throughput_figure("bank building, reduced STCN", bank, "plain key-encoder forward", plain, note, "frames/s")
    )
    figures.append(_training_figure(task, settings))
    return figures


def _training_figure(task, settings: VOSBenchConfig) -> BenchFigure:
    """Steps/s of the run's STCN with channels-last and bfloat16 autocast on CPU, against neither."""
    batch, crop = task.cfg.trainer.batch_size, task.sampling.crop[0]
    rates = {}
    for fast in (False, True):
        torch.manual_seed(0)
        network = STCN(replace(task.model_config, channels_last=fast, cpu_bfloat16=fast))
        rates[fast] = training_rate(network, torch.device("cpu"), settings.train_steps, 1, batch, crop)["steps_per_s"]
    note = f"{task.model_config.key_backbone} keys, batch {batch} of {crop} x {crop} triplets, CPU"
    return throughput_figure(
        "training step, channels-last + bfloat16", rates[True], "float32", rates[False], note, "steps/s"
    )
