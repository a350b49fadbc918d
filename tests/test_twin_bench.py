"""The one-request CP-GSU of mode=bench computes Eq. 6, whatever its memory layout."""

import torch

from papers.twin.attention import union_of_heads_top_k
from papers.twin.bench import OneRequestGSU


def test_cached_request_selects_what_eq6_selects():
    request = OneRequestGSU(2_000, 500, heads=4, key_dim=8, id_dim=16, feature_dim=8, cross_sizes=(18, 12, 7, 3, 3))
    keys = (request.item_table[request.items] @ request.key_weight).view(-1, 4, 8)
    first = torch.einsum("lhd,hd->hl", keys, request.query)
    scalars = torch.stack(
        [table[request.cross[:, j]] @ request.cross_weight[j] for j, table in enumerate(request.cross_tables)], 1
    )
    alpha = first + (scalars @ request.beta).t()
    expected, _ = union_of_heads_top_k(alpha.unsqueeze(0), 100)
    assert request.cached().tolist() == expected[0].tolist()


def test_naive_and_floor_paths_run_on_the_same_request():
    request = OneRequestGSU(500, 100, heads=4, key_dim=8, id_dim=16, feature_dim=8, cross_sizes=(18, 12, 7, 3, 3))
    assert request.naive().shape == (100,)
    total, top = request.floor()
    assert torch.isfinite(total) and top.shape == (4, 100)
