"""Multi-domain, multi-task samples from KuaiRand-format logs.

Every log row of the sample period is a sample: its domain is the row's `tab`, its labels the feedback
columns named in `data.tasks`. Features are categorical indices (0: unknown), in three groups as PEPNet uses
them: general features (ids and attributes, the E of EPNet), domain-side features F_d (the domain id and the
user's and item's exposures and click rate in that domain, counted on the logs before the sample period, so
nothing leaks) and the personal priors F_u, F_i, F_a (user, item and author ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from common.data.kuairand import KuaiRandTables, index_kuairand, task_labels
from common.errors import DatasetError

EXPOSURE_BUCKETS = 17  # log2 of the count, capped
RATE_BUCKETS = 12  # click rate in steps of 0.05, capped
PRIOR_FEATURES = ("user", "item", "author")
DOMAIN_FEATURES = ("domain", "user_domain_exposures", "user_domain_ctr", "item_domain_exposures", "item_domain_ctr")


@dataclass
class MultiDomainData:
    features: np.ndarray  # [samples, features] int64
    feature_names: list[str]
    vocabulary: list[int]  # size of each feature, index 0 included
    labels: np.ndarray  # [samples, tasks] float32
    domain: np.ndarray  # [samples] index into domain_names
    user: np.ndarray  # [samples], for GAUC
    date: np.ndarray  # [samples] YYYYMMDD
    log_ids: dict[str, np.ndarray]  # [samples] each: the log's own user_id, video_id and tab
    domain_names: list[str]  # "tab<value>"
    task_names: list[str]

    def columns(self, names: tuple[str, ...] | list[str]) -> list[int]:
        return [self.feature_names.index(name) for name in names]

    @property
    def general_features(self) -> list[str]:
        return [name for name in self.feature_names if name not in DOMAIN_FEATURES]


def _exposure_bucket(count: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.log2(count + 1)), 0, EXPOSURE_BUCKETS - 2).astype(np.int64) + 1


def _rate_bucket(clicks: np.ndarray, count: np.ndarray) -> np.ndarray:
    rate = clicks / np.maximum(count, 1)
    return np.where(count > 0, np.clip(np.floor(rate * 20), 0, RATE_BUCKETS - 2).astype(np.int64) + 1, 0)


def domain_statistics(keys: np.ndarray, domains: np.ndarray, clicks: np.ndarray, is_history: np.ndarray, rows):
    """(exposure bucket, click-rate bucket) of each sample row's (key, domain) pair, counted on history rows."""
    history = pd.DataFrame({"key": keys[is_history], "domain": domains[is_history], "click": clicks[is_history]})
    counts = history.groupby(["key", "domain"])["click"].agg(["size", "sum"])
    lookup = pd.MultiIndex.from_arrays([keys[rows], domains[rows]])
    found = counts.reindex(lookup).fillna(0.0)
    exposures, clicked = found["size"].to_numpy(), found["sum"].to_numpy()
    return _exposure_bucket(exposures) * (exposures > 0), _rate_bucket(clicked, exposures)


def build_multidomain_data(
    tables: KuaiRandTables,
    sample_start_date: int,
    tasks: list[str],
    domains: list[int] | None,
    user_feature_columns: list[str],
) -> MultiDomainData:
    logs = tables.logs
    index = index_kuairand(tables, user_feature_columns)
    tabs = logs["tab"].to_numpy()
    if domains is None:
        domains = sorted(np.unique(tabs[logs["date"].to_numpy() >= sample_start_date]).tolist())
    unknown = sorted(set(domains) - set(np.unique(tabs).tolist()))
    if unknown:
        raise DatasetError(f"data.domains={domains}: tabs {unknown} never occur; the logs have tabs {np.unique(tabs)}.")
    domain_of_tab = np.full(int(max(tabs.max(), max(domains))) + 1, -1)
    domain_of_tab[sorted(domains)] = np.arange(len(domains))
    domain = domain_of_tab[tabs]  # -1: a tab outside data.domains, left out
    is_history = (logs["date"].to_numpy() < sample_start_date) & (domain >= 0)
    rows = np.flatnonzero((logs["date"].to_numpy() >= sample_start_date) & (domain >= 0))
    if len(rows) == 0:
        raise DatasetError(
            f"no log rows of tabs {domains} on or after data.sample_start_date={sample_start_date}; the logs span "
            f"{logs['date'].min()} to {logs['date'].max()}."
        )
    clicks = logs["is_click"].to_numpy()
    user_exposures, user_rate = domain_statistics(index.user, domain, clicks, is_history, rows)
    item_exposures, item_rate = domain_statistics(index.item, domain, clicks, is_history, rows)
    item = index.item[rows]
    columns = {
        "user": (index.user[rows], index.num_users),
        "item": (item, index.num_items),
        "author": (index.item_author[item], index.authors),
        "tag": (index.item_tag[item], index.tags),
        "duration": (index.item_duration[item], int(index.item_duration.max()) + 1),
        "hour": (logs["hourmin"].to_numpy()[rows] // 100 + 1, 25),
        **{
            column: (index.user_features[index.user[rows], position], size)
            for position, (column, size) in enumerate(zip(user_feature_columns, index.user_feature_sizes, strict=True))
        },
        "domain": (domain[rows] + 1, len(domains) + 1),
        "user_domain_exposures": (user_exposures, EXPOSURE_BUCKETS),
        "user_domain_ctr": (user_rate, RATE_BUCKETS),
        "item_domain_exposures": (item_exposures, EXPOSURE_BUCKETS),
        "item_domain_ctr": (item_rate, RATE_BUCKETS),
    }
    return MultiDomainData(
        features=np.stack([values for values, _ in columns.values()], axis=1).astype(np.int64),
        feature_names=list(columns),
        vocabulary=[size for _, size in columns.values()],
        labels=task_labels(logs.iloc[rows], tasks),
        domain=domain[rows],
        user=index.user[rows],
        date=logs["date"].to_numpy()[rows],
        log_ids={column: logs[column].to_numpy()[rows] for column in ("user_id", "video_id", "tab")},
        domain_names=[f"tab{tab}" for tab in sorted(domains)],
        task_names=list(tasks),
    )


class MultiDomainSplit:
    """The samples of one split; `batch` gathers whole batches at once."""

    def __init__(self, data: MultiDomainData, rows: np.ndarray):
        self.rows = rows  # into `data`'s samples
        self.features = torch.from_numpy(data.features[rows])
        self.labels = torch.from_numpy(data.labels[rows])
        self.domain = torch.from_numpy(data.domain[rows].astype(np.int64))
        self.user = torch.from_numpy(data.user[rows].astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return {
            "features": self.features[rows],
            "labels": self.labels[rows],
            "domain": self.domain[rows],
            "user": self.user[rows],
        }
