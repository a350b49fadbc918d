"""Gastric WSI benchmarks (mode=bench): tiles per second end to end (thumbnail, Otsu tissue filter, tiling,
parallel region reads and the patch network) with 1 and N reading threads, against the raw OpenSlide
read_region rate for the same tiles (the I/O floor), seconds per slide, and the patch network's training rate with the
run's CPU speed options (channels-last, bfloat16) against plain float32."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from common.bench import BenchFigure, multiple_figure, samples_per_second, throughput_figure
from common.config import bounded
from papers.gastric_wsi.data import read_slide_table
from papers.gastric_wsi.patch_network import MultiTaskPatchNet, patch_loss, tile_tensor
from papers.gastric_wsi.screening import view_slide
from papers.gastric_wsi.slides import open_slide
from papers.gastric_wsi.tiling import TileGrid, TilingConfig, read_tiles, tile_grid
from papers.gastric_wsi.tissue import otsu_tissue_mask


@dataclass
class GastricBenchConfig:
    slides: int = bounded(4, minimum=1)  # test slides measured
    workers: int = bounded(2, minimum=1)  # N of the parallel figure (1 is always measured)
    train_steps: int = bounded(5, minimum=1)  # timed patch-network training steps per setting


def _grid(task, record, tiling: TilingConfig) -> TileGrid:
    """Thumbnail, Otsu tissue mask and tile grid of one slide."""
    view = view_slide(record, tiling, task.resolution, task.data_config.classes)
    tissue = otsu_tissue_mask(view.thumbnail, task.pipeline.otsu, view.thumbnail_mpp)
    return tile_grid(view.info, tissue, view.downsample, tiling)


def _raw_reads(task, records, tiling: TilingConfig) -> tuple[int, float]:
    """Tiles and seconds of plain read_region calls, one thread, for the same tiles (grids made beforehand)."""
    count, seconds = 0, 0.0
    for record in records:
        grid = _grid(task, record, tiling)
        slide, info = open_slide(record.path, task.resolution)
        level = info.level_for_mpp(tiling.mpp, tiling.level_tolerance)
        extent = int(round(grid.footprint / info.level_downsamples[level]))
        start = time.perf_counter()
        for x, y in grid.origins:
            slide.read_region((int(x), int(y)), level, (extent, extent))
        seconds += time.perf_counter() - start
        count += len(grid.origins)
        slide.close()
    return count, seconds


@torch.no_grad()
def _end_to_end(task, records, tiling: TilingConfig, model) -> tuple[int, float]:
    """Tiles and seconds of the screening path from opening the slide to the patch network's outputs."""
    count, start = 0, time.perf_counter()
    for record in records:
        grid = _grid(task, record, tiling)
        slide, info = open_slide(record.path, task.resolution)
        for chunk in read_tiles(slide, info, grid, tiling):
            model(tile_tensor(chunk))
            count += len(chunk)
        slide.close()
    return count, time.perf_counter() - start


def _training_figure(task, settings: GastricBenchConfig) -> BenchFigure:
    """Tiles/s of patch-network training steps (forward, loss, backward, Adam) on random tiles, with the run's
    channels-last and bfloat16 settings against neither."""
    config, batch, side = task.model_config, task.cfg.trainer.batch_size, task.pipeline.tiling.size
    generator = torch.Generator().manual_seed(0)
    tiles = torch.randn(batch, 3, side, side, generator=generator)
    masks = (torch.rand(batch, side, side, generator=generator) < 0.1).float()
    labels = masks.flatten(1).amax(1).long()
    rates = {}
    for name, options in (("run", config), ("float32", replace(config, channels_last=False, cpu_bfloat16=False))):
        torch.manual_seed(0)
        model = MultiTaskPatchNet(options).train()
        optimizer = torch.optim.Adam(model.parameters())

        def step(model=model, optimizer=optimizer, options=options):
            loss, _ = patch_loss(model(tiles), labels, masks, options)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        rates[name] = samples_per_second(step, settings.train_steps, batch)
    note = (
        f"{config.encoder}, batch {batch} of {side} px tiles, channels_last={config.channels_last}, "
        f"cpu_bfloat16={config.cpu_bfloat16}, {torch.get_num_threads()} thread(s)"
    )
    return throughput_figure("patch network training", rates["run"], "float32", rates["float32"], note, "tiles/s")


def run_benchmarks(task, settings: GastricBenchConfig) -> list[BenchFigure]:
    task.prepare_data()
    config, root = task.data_config, task._root()
    annotations = root / config.annotations if config.annotations else None
    records = read_slide_table(root / config.labels, root / config.slides, annotations, config.data_card)
    records = [record for record in records if record.split == "test"][: settings.slides]
    model = MultiTaskPatchNet(task.model_config).eval()
    tiling = task.pipeline.tiling
    _end_to_end(task, records[:1], tiling, model)  # warm-up: first-call costs of torch and OpenSlide
    tiles, raw_seconds = _raw_reads(task, records, tiling)
    note = f"{len(records)} slides, {tiles} tiles of {tiling.size} px at {tiling.mpp} µm/px"
    figures, per_slide = [], {}
    for workers in sorted({1, settings.workers}):
        count, seconds = _end_to_end(task, records, replace(tiling, workers=workers), model)
        per_slide[workers] = seconds / len(records)
        figures.append(
            throughput_figure(
                f"end to end, {workers} reading thread(s)",
                count / seconds,
                "raw read_region, 1 thread",
                tiles / raw_seconds,
                note,
                "tiles/s",
            )  # fmt: skip
        )
    most = max(per_slide)
    figures.append(
        multiple_figure(
            f"seconds per slide, {most} reading thread(s)",
            per_slide[most],
            "raw read_region of its tiles",
            raw_seconds / len(records),
            note,
        )  # fmt: skip
    )
    figures.append(_training_figure(task, settings))
    return figures
