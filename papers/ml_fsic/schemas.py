"""ML-FSIC's typed configs by schema name (common/hydra_setup.py): its YAML extends them and sets only what differs
from their defaults."""

from papers.ml_fsic.bench import MLFSICBenchConfig
from papers.ml_fsic.task import EpisodeConfig, MLFSICModelConfig, MultiLabelDataConfig

SCHEMAS = {
    "ml_fsic_model": MLFSICModelConfig,
    "ml_fsic_data": MultiLabelDataConfig,
    "ml_fsic_episodes": EpisodeConfig,
    "ml_fsic_bench": MLFSICBenchConfig,
}
