"""Gastric WSI's typed configs by schema name (common/hydra_setup.py): its YAML extends them and sets only what
differs from their defaults."""

from papers.gastric_wsi.bench import GastricBenchConfig
from papers.gastric_wsi.task import GastricDataConfig, GastricModelConfig, PipelineConfig

SCHEMAS = {
    "gastric_model": GastricModelConfig,
    "gastric_pipeline": PipelineConfig,
    "gastric_bench": GastricBenchConfig,
    "gastric_data": GastricDataConfig,  # types synthetic_gastric and slides alike
}
