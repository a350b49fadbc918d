"""Two-shot VOS's typed configs by schema name (common/hydra_setup.py): its YAML extends them and sets only what
differs from their defaults."""

from papers.two_shot_vos.bench import VOSBenchConfig
from papers.two_shot_vos.inference import InferenceConfig
from papers.two_shot_vos.sampling import SamplingConfig
from papers.two_shot_vos.sources import VOSDataConfig
from papers.two_shot_vos.static import StaticPretrainingConfig
from papers.two_shot_vos.stcn import VOSModelConfig
from papers.two_shot_vos.training import RecipeConfig

SCHEMAS = {
    "two_shot_vos_model": VOSModelConfig,
    "two_shot_vos_recipe": RecipeConfig,
    "two_shot_vos_sampling": SamplingConfig,
    "two_shot_vos_inference": InferenceConfig,
    "two_shot_vos_bench": VOSBenchConfig,
    "two_shot_vos_data": VOSDataConfig,
    "two_shot_vos_static": StaticPretrainingConfig,
}
