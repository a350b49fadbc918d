"""TWIN's and TWIN-V2's typed configs by schema name (common/hydra_setup.py): their YAML extends them and sets only
what differs from their defaults."""

from papers.twin.bench import TwinBenchConfig
from papers.twin.bench_v2 import TwinV2BenchConfig
from papers.twin.model import TwinModelConfig
from papers.twin.no_learning import NoLearningConfig
from papers.twin.task import LifelongDataConfig
from papers.twin.task_v2 import LifeCycleConfig

SCHEMAS = {
    "twin_model": TwinModelConfig,
    "twin_data": LifelongDataConfig,
    "twin_no_learning": NoLearningConfig,
    "twin_bench": TwinBenchConfig,
    "twin_v2_life_cycle": LifeCycleConfig,
    "twin_v2_bench": TwinV2BenchConfig,
}
