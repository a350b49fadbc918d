"""The trained model's vocabulary: which embedding row each raw id of its training data got, so that a finished
run can score data it was not trained on (mode=predict).

Feature indices are dense codes of the data they were built from (common/data/kuairand.py), so the same user
gets another index in another dataset. A run keeps, per id-valued feature, the raw key behind every index it
trained on (`vocabulary.json` in its directory): user and video ids, author ids, first tags, user feature
values and tabs. New data is translated key by key; a key the run never saw goes to index 0, the reserved
"unknown" row that also holds missing values. Bucketed features (duration, hour, domain statistics) keep their
bucket, or 0 past the trained table's size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from common.atomic_files import write_json_atomic
from common.data.kuairand import KuaiRandTables
from common.errors import ConfigError, DatasetError
from papers.pepnet.data import MultiDomainData

VOCABULARY_FILE = "vocabulary.json"
UNKNOWN = 0
ITEM_KEYED = ("item", "author", "tag")  # features read off the video: keyed through its video_id
LOG_IDS = {"user": "user_id", "item": "video_id", "domain": "tab"}  # features whose key is a log column


class Vocabulary(NamedTuple):  # not a dataclass: the run record's typed config lists a task's dataclasses
    feature_names: list[str]
    sizes: list[int]  # embedding rows per feature, index 0 included
    task_names: list[str]
    domain_names: list[str]
    keys: dict[str, list]  # per keyed feature: [raw keys, their indices]

    def save(self, path: Path) -> None:
        write_json_atomic(path, self._asdict(), indent=None)


def load_vocabulary(trained_run: Path) -> Vocabulary:
    path = trained_run / VOCABULARY_FILE
    if not path.is_file():
        raise DatasetError(
            f"from_run={trained_run} has no {VOCABULARY_FILE} (the raw id behind every embedding row, written after "
            "training since mode=predict exists), so its embeddings cannot be matched to new data. Train the run "
            "again and predict from the new run."
        )
    try:
        return Vocabulary(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as error:
        raise DatasetError(f"{path} is not a vocabulary written by a PEPNet run ({error}).") from None


def _key_values(values: pd.Series | np.ndarray) -> np.ndarray:
    """Comparable keys: numbers as floats (NaN: missing), anything else as strings (None: missing)."""
    series = pd.Series(values)
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64)
    return np.where(series.isna(), None, series.astype(str)).astype(object)


def _raw_keys(tables: KuaiRandTables, data: MultiDomainData, rows: np.ndarray, feature: str) -> np.ndarray:
    """The raw key behind `feature`'s index at the sample rows `rows` (missing where the index is 0)."""
    if feature in LOG_IDS:
        return _key_values(data.log_ids[LOG_IDS[feature]][rows])
    if feature in ITEM_KEYED:
        video_ids = data.log_ids["video_id"][rows]
        videos = tables.videos.drop_duplicates("video_id", keep="last").set_index("video_id").reindex(video_ids)
        if feature == "author":
            return _key_values(videos["author_id"])
        first_tag = videos["tag"].astype(str).str.split(",").str[0].replace({"nan": np.nan})  # as index_kuairand
        return _key_values(first_tag)
    user_ids = data.log_ids["user_id"][rows]
    users = tables.users.drop_duplicates("user_id", keep="last").set_index("user_id")
    present = np.isin(user_ids, users.index)
    values = users[feature].astype(str).reindex(user_ids).to_numpy(dtype=object)
    return np.where(present, values, None).astype(object)


def _parent_ids(data: MultiDomainData, feature: str) -> np.ndarray:
    """The log column a feature's value follows from: one representative row per distinct value suffices."""
    if feature in LOG_IDS:
        return data.log_ids[LOG_IDS[feature]]
    return data.log_ids["video_id" if feature in ITEM_KEYED else "user_id"]


def keyed_features(data: MultiDomainData, user_feature_columns: list[str]) -> list[str]:
    return [name for name in data.feature_names if name in (*LOG_IDS, *ITEM_KEYED, *user_feature_columns)]


def vocabulary_of(tables: KuaiRandTables, data: MultiDomainData, user_feature_columns: list[str]) -> Vocabulary:
    """The raw key of every index of every keyed feature the samples of `data` hold."""
    keys = {}
    for feature in keyed_features(data, user_feature_columns):
        _, first = np.unique(_parent_ids(data, feature), return_index=True)
        pairs = pd.DataFrame(
            {"key": _raw_keys(tables, data, first, feature), "index": data.features[first, data.columns([feature])[0]]}
        )
        pairs = pairs[pairs["index"] != UNKNOWN].dropna().drop_duplicates("key")
        keys[feature] = [pairs["key"].tolist(), pairs["index"].astype(int).tolist()]
    return Vocabulary(list(data.feature_names), list(data.vocabulary), list(data.task_names), data.domain_names, keys)


@dataclass
class Translation:
    data: MultiDomainData  # features in the trained model's indices, domains in its domain list
    unknown: dict[str, np.ndarray]  # per keyed feature: [samples] whether the run never saw the sample's key


def translate(
    tables: KuaiRandTables, data: MultiDomainData, vocabulary: Vocabulary, user_feature_columns: list[str]
) -> Translation:
    """`data` (indexed on its own) in the indices of the run that wrote `vocabulary`."""
    if data.feature_names != vocabulary.feature_names:
        raise ConfigError(
            f"the model reads the features {vocabulary.feature_names}, this data gives {data.feature_names}: "
            "set data.user_feature_columns as the trained run had them."
        )
    unseen = sorted(set(data.domain_names) - set(vocabulary.domain_names))
    if unseen:
        known = [int(name.removeprefix("tab")) for name in vocabulary.domain_names]
        usable = sorted(int(name.removeprefix("tab")) for name in set(data.domain_names) & set(vocabulary.domain_names))
        raise DatasetError(
            f"the data's sample period holds the tabs {[int(name.removeprefix('tab')) for name in unseen]}, which "
            f"the model was not trained on (its domains are the tabs {known}); a domain's own gate and parameters "
            f"cannot be guessed. Predict on the tabs it knows with data.domains={usable}."
        )
    features = np.where(data.features < np.asarray(vocabulary.sizes), data.features, UNKNOWN)
    unknown = {}
    for feature in keyed_features(data, user_feature_columns):
        _, first, inverse = np.unique(_parent_ids(data, feature), return_index=True, return_inverse=True)
        trained_keys, trained_indices = vocabulary.keys[feature]
        position = pd.Index(_key_values(trained_keys)).get_indexer(_raw_keys(tables, data, first, feature))
        index = np.where(position >= 0, np.asarray(trained_indices, dtype=np.int64)[position], UNKNOWN)[inverse]
        features[:, data.columns([feature])[0]] = index
        unknown[feature] = position[inverse] < 0
    domain = features[:, data.columns(["domain"])[0]] - 1
    translated = replace(
        data, features=features, vocabulary=list(vocabulary.sizes), domain=domain, domain_names=vocabulary.domain_names
    )
    return Translation(translated, unknown)
