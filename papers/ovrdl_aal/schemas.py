"""OVRDL+AAL's typed configs by schema name (common/hydra_setup.py): its YAML extends them and sets only what
differs from their defaults."""

from papers.ovrdl_aal.bench import OVRDLBenchConfig
from papers.ovrdl_aal.image_folder import DigitImagesConfig
from papers.ovrdl_aal.task import CelebADataConfig, CMNISTDataConfig, OVRDLAALModelConfig

SCHEMAS = {
    "ovrdl_aal_model": OVRDLAALModelConfig,
    "ovrdl_aal_bench": OVRDLBenchConfig,
    "ovrdl_aal_digits_data": CMNISTDataConfig,  # synthetic_cmnist and mnist
    "ovrdl_aal_celeba_data": CelebADataConfig,
    "ovrdl_aal_digit_images_data": DigitImagesConfig,
}
