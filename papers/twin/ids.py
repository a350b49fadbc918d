"""The raw ids behind lifelong data's dense indices, kept with a trained run (`ids.npz`), and the alignment of new data
onto a trained run's indices for mode=predict.

New data is indexed on its own (its users, videos, tabs and user-feature categories sorted); the trained model's
embedding tables are indexed by the trained data's. Aligning translates every index through the raw ids: a video,
tab or user-feature category the trained run never saw gets the reserved index 0 (unknown: the padding row, with
no author, tag or duration); a user the trained run never saw is refused, since TWIN's user embedding, GAUC and
life cycle are per user and index 0 would merge all such users into one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from common.data.kuairand import KuaiRandTables
from common.errors import DatasetError
from papers.twin.data import LifelongData, Vocabulary

IDS_FILE = "ids.npz"
TAB_COLUMN = 1  # behavior_cross columns: completion, tab, like, follow


class DataIds(NamedTuple):
    """The raw value of each dense index 1..K (index 0 is unknown), in index order (a named tuple, not a config)."""

    users: np.ndarray
    videos: np.ndarray
    tabs: np.ndarray
    user_features: list[np.ndarray]  # per configured user-feature column, its categories as strings

    @classmethod
    def of_tables(cls, tables: KuaiRandTables, user_feature_columns: list[str]) -> DataIds:
        """The ids as `index_kuairand` and `build_lifelong_data` number them."""
        logs, videos, users = tables.logs, tables.videos, tables.users
        return cls(
            users=np.union1d(users["user_id"].to_numpy(), logs["user_id"].to_numpy()),
            videos=np.union1d(videos["video_id"].to_numpy(), logs["video_id"].to_numpy()),
            tabs=np.asarray(pd.factorize(logs["tab"], sort=True)[1]),
            user_features=[
                np.asarray(pd.factorize(users[column].astype(str), sort=True)[1], dtype=str)
                for column in user_feature_columns
            ],
        )


@dataclass
class TrainedIds:
    """What a trained run's indices mean: their raw ids, the vocabulary sizes and the item tables."""

    ids: DataIds
    vocabulary: Vocabulary
    item_author: np.ndarray
    item_tag: np.ndarray
    item_duration: np.ndarray

    @classmethod
    def of_data(cls, ids: DataIds, data: LifelongData) -> TrainedIds:
        return cls(ids, data.vocabulary, data.item_author, data.item_tag, data.item_duration)

    def save(self, directory: Path) -> None:
        features = {f"user_feature_{index}": values for index, values in enumerate(self.ids.user_features)}
        sizes = {name: np.asarray(value) for name, value in asdict(self.vocabulary).items()}
        np.savez(
            Path(directory) / IDS_FILE,
            users=self.ids.users,
            videos=self.ids.videos,
            tabs=self.ids.tabs,
            item_author=self.item_author,
            item_tag=self.item_tag,
            item_duration=self.item_duration,
            **features,
            **{f"vocabulary_{name}": value for name, value in sizes.items()},
        )

    @classmethod
    def load(cls, run_dir: Path) -> TrainedIds:
        path = Path(run_dir) / IDS_FILE
        if not path.is_file():
            raise DatasetError(
                f"{path} does not exist: the run {run_dir} kept no ids of its users and videos (runs made before "
                "mode=predict existed do not). Train the run again to predict with it."
            )
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
        sizes = {name.removeprefix("vocabulary_"): arrays[name] for name in arrays if name.startswith("vocabulary_")}
        vocabulary = Vocabulary(
            **{name: tuple(int(v) for v in value) if value.ndim else int(value) for name, value in sizes.items()}
        )
        features = sorted((name for name in arrays if name.startswith("user_feature_")), key=lambda n: int(n[13:]))
        ids = DataIds(arrays["users"], arrays["videos"], arrays["tabs"], [arrays[name] for name in features])
        return cls(ids, vocabulary, arrays["item_author"], arrays["item_tag"], arrays["item_duration"])


def index_translation(new_values: np.ndarray, trained_values: np.ndarray) -> np.ndarray:
    """[len(new_values) + 1]: each new index (0 included) -> the trained index of the same raw value, 0 if unseen."""
    positions = pd.Index(trained_values).get_indexer(new_values)
    return np.concatenate([[0], np.where(positions >= 0, positions + 1, 0)]).astype(np.int64)


def align_to_trained(data: LifelongData, ids: DataIds, trained: TrainedIds) -> LifelongData:
    """`data` re-indexed by the trained run's ids (see the module docstring); refuses users the run never saw."""
    user = index_translation(ids.users, trained.ids.users)
    sampled = data.samples["user"].to_numpy()
    unknown = np.unique(ids.users[sampled[user[sampled] == 0] - 1])
    if len(unknown):
        raise DatasetError(
            f"{len(unknown)} users of the given data were not in the trained run's data (user_id "
            f"{', '.join(map(str, unknown[:5]))}{', ...' if len(unknown) > 5 else ''}): the model has no embedding "
            "for them. Predict on users the run was trained on, or train a run that includes them."
        )
    if len(ids.user_features) != len(trained.ids.user_features):
        raise DatasetError(
            f"the given data reads {len(ids.user_features)} user-feature columns (data.user_feature_columns) but the "
            f"trained run read {len(trained.ids.user_features)}: give the trained run's data.user_feature_columns."
        )
    item = index_translation(ids.videos, trained.ids.videos)
    tab = index_translation(ids.tabs, trained.ids.tabs)
    columns = zip(ids.user_features, trained.ids.user_features, strict=True)
    features = [index_translation(new, old) for new, old in columns]
    user_features = np.zeros((trained.vocabulary.users, len(features)), dtype=np.int64)
    known = user > 0
    for column, translation in enumerate(features):
        user_features[user[known], column] = translation[data.user_features[known, column]]
    behavior_cross = data.behavior_cross.copy()
    behavior_cross[:, TAB_COLUMN] = tab[behavior_cross[:, TAB_COLUMN]]
    samples = data.samples.assign(
        user=user[sampled], item=item[data.samples["item"].to_numpy()], tab=tab[data.samples["tab"].to_numpy()]
    )
    return replace(
        data,
        vocabulary=trained.vocabulary,
        item_author=trained.item_author,
        item_tag=trained.item_tag,
        item_duration=trained.item_duration,
        behavior_item=item[data.behavior_item].astype(np.int32),
        behavior_cross=behavior_cross,
        behavior_user=user[data.behavior_user],
        samples=samples,
        user_features=user_features,
    )
