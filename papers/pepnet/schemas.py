"""PEPNet's typed configs by schema name (common/hydra_setup.py): its YAML extends them and sets only what differs
from their defaults."""

from papers.pepnet.bench import PEPNetBenchConfig
from papers.pepnet.model import PEPNetModelConfig
from papers.pepnet.no_learning import NoLearningConfig
from papers.pepnet.task import MultiDomainDataConfig

SCHEMAS = {
    "pepnet_model": PEPNetModelConfig,
    "pepnet_no_learning": NoLearningConfig,
    "pepnet_bench": PEPNetBenchConfig,
    "pepnet_data": MultiDomainDataConfig,
}
