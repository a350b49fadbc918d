"""One-script GPU check of the full STCN (key ResNet-50, value ResNet-18, 512-d values, decoder 512/256/256):

    python -m papers.two_shot_vos.gpu_check [--davis /path/to/DAVIS --checkpoint /path/to/stcn.pth] [--out f.json]

- inference frames/s at DAVIS's 480p (480 x 854, padded to 480 x 864), two objects, top-20, memory every 5
  frames, in float32 and with AMP (STCN's eval_davis.py --amp);
- training steps/s of the official batch (8 triplets of 384 x 384 crops, train.py's defaults) with AMP, and
  the peak GPU memory;
- with `--davis` and `--checkpoint` (the official s012 model), J, F and J&F on DAVIS 2017 val through this
  package's propagation and metrics, to hold against STCN's README (Numbers (s012), DAVIS 2017 validation).

Random weights serve the timings (speed does not depend on them); the checkpoint is loaded after them. The
figures are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common.metrics.segmentation import j_and_f, video_object_scores
from papers.two_shot_vos.checkpoint import load_stcn_checkpoint
from papers.two_shot_vos.data import read_davis
from papers.two_shot_vos.inference import InferenceConfig, object_ids, segment_video
from papers.two_shot_vos.sampling import normalize
from papers.two_shot_vos.stcn import STCN, STCNConfig
from papers.two_shot_vos.training import TwoShotModel, triplet_loss

FULL = {"key_backbone": "resnet50", "value_backbone": "resnet18", "value_dim": 512, "decoder_dims": [512, 256, 256]}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=60, help="frames of the timed 480p video")
    parser.add_argument("--size", type=int, nargs=2, default=[480, 854], help="inference frame size [H W]")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (and frames) first")
    parser.add_argument("--batch", type=int, default=8, help="training triplets per step (official: 8)")
    parser.add_argument("--crop", type=int, default=384, help="training crop side (official: 384)")
    parser.add_argument("--davis", help="DAVIS 2017 root (JPEGImages/480p, Annotations/480p, ImageSets/2017)")
    parser.add_argument("--checkpoint", help="the official stcn.pth, for the DAVIS 2017 val J&F")
    parser.add_argument("--out", help="where to write the figures as JSON")
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_rate(model: STCN, device, frames: int, size: tuple[int, int], amp: bool, warmup: int) -> float:
    """Frames/s of segmenting one random video of `frames` frames at `size` with two objects (after segmenting
    its first `warmup` frames untimed)."""
    video = normalize(np.random.default_rng(0).integers(0, 255, (frames, *size, 3), dtype=np.uint8)).to(device)
    first = np.zeros(size, dtype=np.uint8)
    first[size[0] // 4 : size[0] // 2, size[1] // 4 : size[1] // 2] = 1
    first[size[0] // 2 : 3 * size[0] // 4, size[1] // 2 : 3 * size[1] // 4] = 2
    settings = InferenceConfig(amp=amp)
    segment_video(model, video[:warmup], {0: first}, settings)
    synchronize(device)
    start = time.perf_counter()
    segment_video(model, video, {0: first}, settings)
    synchronize(device)
    return frames / (time.perf_counter() - start)


def training_rate(network: STCN, device, steps: int, warmup: int, batch_size: int, crop: int) -> dict:
    """Optimizer steps/s of the triplet pass with AMP on random triplets, and the peak GPU memory (GiB)."""
    model = TwoShotModel(network, teacher=False).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    target = torch.randint(0, 3, (batch_size, 3, crop, crop), device=device)
    batch = {
        "frames": torch.randn(batch_size, 3, 3, crop, crop, device=device),
        "first_masks": torch.stack([target[:, 0] == 1, target[:, 0] == 2], dim=1).float(),
        "selector": torch.ones(batch_size, 2, device=device),
    }
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed = 0.0
    for step in tqdm(range(warmup + steps), desc="training steps"):
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            loss = triplet_loss(model(batch), target, batch["selector"], 0.15)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        synchronize(device)
        if step >= warmup:
            timed += time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return {"steps_per_s": steps / timed, "peak_memory_gib": peak, "batch": batch_size, "crop": crop}


def davis_scores(model: STCN, root: str, checkpoint: str, device: torch.device, amp: bool) -> dict[str, float]:
    """J, F and J&F on DAVIS 2017 val with the official checkpoint loaded into `model`, as STCN's eval_davis.py
    (top-20, memory every 5 frames), scored with davis2017-evaluation's rules at 480p."""
    load_stcn_checkpoint(model, checkpoint)
    model.to(device).eval()
    settings = InferenceConfig(amp=amp)
    j_scores, f_scores = [], []
    for video in tqdm(read_davis(Path(root), "val", "data_cards/davis.md"), desc="DAVIS 2017 val"):
        first = video.masks[0]
        masks = segment_video(model, normalize(video.frames).to(device), {0: first}, settings)
        truth = np.stack([video.masks[t] for t in range(len(video.frames))])
        j, f = video_object_scores(truth, masks, object_ids(first))
        j_scores.append(j)
        f_scores.append(f)
    return j_and_f(np.concatenate(j_scores), np.concatenate(f_scores))


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = STCN(STCNConfig(**FULL)).to(device).eval()
    size = tuple(args.size)
    figures = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "inference_frames": args.frames,
        "inference_size": list(size),
        "inference_fps_float32": inference_rate(model, device, args.frames, size, False, args.warmup),
        "inference_fps_amp": inference_rate(model, device, args.frames, size, True, args.warmup),
        "training_amp": training_rate(model, device, args.steps, args.warmup, args.batch, args.crop),
    }
    if args.davis and args.checkpoint:
        figures["davis2017_val"] = davis_scores(model, args.davis, args.checkpoint, device, amp=False)
    print(json.dumps(figures, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
