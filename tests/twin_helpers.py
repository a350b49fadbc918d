"""A tiny TWIN model and a random batch for unit tests (no data on disk needed)."""

from __future__ import annotations

import numpy as np
import torch

from papers.twin.data import Vocabulary
from papers.twin.model import LifelongCTRModel, TwinModelConfig

VOCABULARY = Vocabulary(
    items=300, authors=40, tags=6, durations=20, users=20, user_features=(4, 7), tabs=7, cross=(18, 12, 7, 3, 3)
)


def tiny_model(**overrides) -> LifelongCTRModel:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tables = {
        "item_author": rng.integers(1, VOCABULARY.authors, VOCABULARY.items),
        "item_tag": rng.integers(1, VOCABULARY.tags, VOCABULARY.items),
        "item_duration": rng.integers(1, VOCABULARY.durations, VOCABULARY.items),
    }
    settings = {"gsu_length": 400, "esu_length": 100, "short_length": 50, "key_dim": 8, "value_dim": 8}
    config = TwinModelConfig(**{**settings, "output_dim": 16, "mlp_dims": [32], **overrides})
    return LifelongCTRModel(config, VOCABULARY, tables)


def random_batch(batch_size: int = 6, length: int = 400, seed: int = 1, short_histories: bool = True) -> dict:
    generator = torch.Generator().manual_seed(seed)

    def ints(high: int, shape=(batch_size,)) -> torch.Tensor:
        return torch.randint(1, high, shape, generator=generator)

    items = ints(VOCABULARY.items, (batch_size, length))
    cross = torch.stack([ints(size, (batch_size, length)) for size in VOCABULARY.cross], dim=-1).int()
    mask = torch.ones(batch_size, length, dtype=torch.bool)
    if short_histories:
        mask[0, : length - 30] = False  # a user with only 30 behaviors (fewer than k = 100)
        mask[1, : length // 2] = False
    items, cross = items * mask, cross * mask.unsqueeze(-1)
    return {
        "history_item": items,
        "history_cross": cross,
        "history_mask": mask,
        "recent_item": items[:, -50:],
        "recent_cross": cross[:, -50:],
        "recent_mask": mask[:, -50:],
        "target_item": ints(VOCABULARY.items),
        "context": torch.stack([ints(7), ints(25)], dim=1),
        "user": ints(VOCABULARY.users),
        "user_features": torch.stack([ints(4), ints(7)], dim=1),
        "label": torch.randint(0, 2, (batch_size,), generator=generator).float(),
    }
