"""TWIN's benchmarks (mode=bench): CP-GSU latency with the cached projection against the naive projection
and against the floor of one read of the cache, training throughput of TWIN against DIN, and TWIN's training
step against its floor (the GSU over the L behaviors and the ESU on the k it keeps, forward and backward)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from common.bench import (
    BenchFigure,
    median_seconds,
    multiple_figure,
    speedup_figure,
    throughput_figure,
    training_samples_per_second,
)
from common.config import bounded
from papers.twin.attention import union_of_heads_top_k
from papers.twin.data import LifelongSplit


@dataclass
class TwinBenchConfig:
    lengths: list[int] = bounded(default_factory=lambda: [1_000, 10_000, 100_000], minimum=1)
    repeats: int = bounded(30, minimum=1)
    threads: int = bounded(1, minimum=1)  # GSU latency is measured on this many cores
    train_steps: int = bounded(8, minimum=1)
    items: int = bounded(200_000, minimum=1)  # vocabulary of the one-request latency benchmark


class OneRequestGSU:
    """One request's CP-GSU over L behaviors, three ways, with the same random parameters."""

    def __init__(
        self,
        length: int,
        items: int,
        heads: int,
        key_dim: int,
        id_dim: int,
        feature_dim: int,
        cross_sizes,
        cluster_sizes: bool = False,
    ):
        """`cluster_sizes`: the L entries are TWIN-V2's virtual items, whose ln n joins their cached bias."""
        generator = torch.Generator().manual_seed(0)
        self.heads, self.key_dim = heads, key_dim
        inherent_dim = 2 * id_dim + 2 * feature_dim
        cross_dim = feature_dim * len(cross_sizes)
        self.inherent_dim, self.full_dim = inherent_dim, inherent_dim + cross_dim
        self.item_table = torch.randn(items, inherent_dim, generator=generator)  # K_h of every item
        self.cross_tables = cross_tables = [torch.randn(size, feature_dim, generator=generator) for size in cross_sizes]
        self.items = torch.randint(0, items, (length,), generator=generator)
        self.cross = torch.stack([torch.randint(0, s, (length,), generator=generator) for s in cross_sizes], 1)
        self.key_weight = torch.randn(inherent_dim, heads * key_dim, generator=generator) / inherent_dim**0.5
        self.full_weight = torch.randn(self.full_dim, heads * key_dim, generator=generator) / self.full_dim**0.5
        self.cross_weight = torch.randn(len(cross_sizes), feature_dim, generator=generator)  # w^c
        self.beta = torch.randn(len(cross_sizes), heads, generator=generator)
        self.query = torch.randn(heads, key_dim, generator=generator)
        # the online cache: K_h W^h per item, read for this user's behaviors into a head-major block
        projected = (self.item_table[self.items] @ self.key_weight).view(length, heads, key_dim)
        self.cache = projected.permute(1, 0, 2).contiguous()  # [heads, L, d_k]
        # K_{c,j} w^c_j beta_{j,h} for every value of every cross feature: [J][heads, values]
        head_tables = [torch.outer(self.beta[j], table @ self.cross_weight[j]) for j, table in enumerate(cross_tables)]
        # the cross features other than time-since (completion, tab, like, follow) are fixed once a behavior is
        # logged, so their bias is cached per behavior beside K_h W^h; only time-since is looked up per request
        self.static_bias = sum(head_tables[j].index_select(1, self.cross[:, j]) for j in range(1, len(cross_sizes)))
        if cluster_sizes:  # alpha' = alpha + ln n: n is fixed once the user's history is clustered
            self.static_bias = self.static_bias + torch.randint(1, 21, (length,), generator=generator).float().log()
        self.value_weight = torch.randn(self.full_dim, heads * key_dim, generator=generator) / self.full_dim**0.5
        self.time_since_table = head_tables[0]  # [heads, values]
        self.floor_scores = torch.randn(heads, length, generator=generator)

    def cached(self) -> torch.Tensor:
        """Eq. 6 from the cache: the cross-feature bias plus one GEMV per head, then the union top-k. The first
        cross feature is time since the behavior, the one that changes with every request."""
        bias = self.static_bias + self.time_since_table.index_select(1, self.cross[:, 0])  # (K_c W^c) beta_a
        scores = torch.stack([torch.addmv(bias[h], self.cache[h], self.query[h]) for h in range(self.heads)])
        return union_of_heads_top_k(scores.unsqueeze(0), 100)[0][0]

    def serve(self) -> torch.Tensor:
        """GSU then ESU for the request: Softmax(alpha)^T K W^v over the 100 selected (Eq. 7), per head."""
        positions = self.cached()
        bias = self.static_bias[:, positions] + self.time_since_table.index_select(1, self.cross[positions, 0])
        alpha = torch.einsum("hkd,hd->hk", self.cache[:, positions], self.query) + bias
        cross = torch.cat([table[self.cross[positions, j]] for j, table in enumerate(self.cross_tables)], dim=1)
        keys = torch.cat([self.item_table[self.items[positions]], cross], dim=1)
        values = (keys @ self.value_weight).view(len(positions), self.heads, self.key_dim)
        return torch.einsum("hk,khd->hd", torch.softmax(alpha, dim=-1), values)

    def naive(self) -> torch.Tensor:
        """Project the full features of all L behaviors for this request, then score and select."""
        cross = torch.cat([table[self.cross[:, j]] for j, table in enumerate(self.cross_tables)], dim=1)
        keys = (torch.cat([self.item_table[self.items], cross], dim=1) @ self.full_weight).view(
            -1, self.heads, self.key_dim
        )
        scores = torch.einsum("lhd,hd->hl", keys, self.query)
        return union_of_heads_top_k(scores.unsqueeze(0), 100)[0][0]

    def floor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The least any scorer must do: read the cache once (a plain sum) and take each head's top-k."""
        return self.cache.sum(), self.floor_scores.topk(100, dim=-1).indices


def gsu_latency_figures(settings: TwinBenchConfig, model_config, cross_sizes) -> list[BenchFigure]:
    figures = []
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        for length in settings.lengths:
            request = OneRequestGSU(
                length,
                settings.items,
                model_config.num_heads,
                model_config.key_dim,
                model_config.id_embedding_dim,
                model_config.feature_embedding_dim,
                cross_sizes,
            )
            cached = median_seconds(request.cached, settings.repeats)
            naive = median_seconds(request.naive, settings.repeats)
            floor = median_seconds(request.floor, settings.repeats)
            note = f"H={request.inherent_dim}, H+C={request.full_dim}, {settings.threads} thread(s)"
            name = f"CP-GSU cached, L={length}"
            figures.append(speedup_figure(name, cached, "naive full projection", naive, note))
            figures.append(multiple_figure(name, cached, "floor: read cache + top-k", floor, note))
    finally:
        torch.set_num_threads(previous_threads)
    return figures


def twin_training_rate(task, model_name: str, length: int, steps: int, batch_size: int) -> float:
    """Training samples/s of `model_name` reading `length` behaviors, on the task's data."""
    task.model_config.name, task.model_config.gsu_length = model_name, length
    split = LifelongSplit(task.data, np.arange(len(task.data.samples)), length, task.model_config.short_length)
    return training_samples_per_second(task, task.build_model(), split, steps, batch_size)


def twin_step_floor_seconds(task, split, batch_size: int, repeats: int) -> float:
    """The least a TWIN training step must do on one ready batch: the CP-GSU's Eq. 6 over all L behaviors and its
    top-k (no gradient), then the ESU on the k kept, forward and backward; no batch gathering, short-term branch,
    top network or optimizer update."""
    model = task.build_model()
    batch = split.batch(np.arange(min(batch_size, len(split))))

    def floor():
        target = model.features.inherent(batch["target_item"])
        interest, _, _ = model.long_term_interest(batch, target)
        interest.sum().backward()

    return median_seconds(floor, repeats, warmup=1)


def run_benchmarks(task, settings: TwinBenchConfig) -> list[BenchFigure]:
    task.prepare_data()
    task.load_data()
    config = task.model_config
    figures = gsu_latency_figures(settings, config, task.data.vocabulary.cross)
    batch_size = min(task.cfg.trainer.batch_size, len(task.data.samples))
    twin_length = config.gsu_length
    twin = twin_training_rate(task, "twin", twin_length, settings.train_steps, batch_size)
    din = twin_training_rate(task, "din", 100, settings.train_steps, batch_size)
    note = f"batch {batch_size}, {torch.get_num_threads()} threads, data {task.dataset_name}"
    figures.append(throughput_figure(f"TWIN training, L={twin_length}", twin, "DIN training, L=100", din, note))
    task.model_config.name, task.model_config.gsu_length = "twin", twin_length
    split = LifelongSplit(task.data, np.arange(len(task.data.samples)), twin_length, config.short_length)
    floor = twin_step_floor_seconds(task, split, batch_size, settings.train_steps)
    floor_name = f"floor: GSU over L={twin_length} + ESU on {config.esu_length}, forward and backward"
    figures.append(multiple_figure("TWIN training step", batch_size / twin, floor_name, floor, note))
    return figures
