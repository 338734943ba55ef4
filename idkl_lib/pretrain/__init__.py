"""A pretrained start for CPU runs: the CPU stand-in for ImageNet weights.

ImageNet weights cannot be used everywhere (an offline machine, a narrow CPU backbone that no ImageNet checkpoint
fits). What they give, a backbone that already tells people apart before it sees the re-ID task, can be made here:
the demo's backbone is trained by plain identity classification on a large synthetic population that no split of
any synthetic dataset contains (:mod:`.population`), in visible light only, and saved as a torchvision-keyed state
dict that ``pretrained=PATH`` loads (:mod:`.classify`), cached once per machine and configuration (:mod:`.cache`).

``python -m idkl_lib.pretrain`` (console script ``idkl-pretrain``) makes or reuses the file and prints its path.
"""

from .cache import (
    CACHE_ENV,
    FORMAT_VERSION,
    LABEL,
    PretrainConfig,
    default_cache_dir,
    ensure_pretrained,
    pretrained_start,
    read_record,
)
from .classify import PretrainNet, train_classifier
from .population import PRETRAIN_CAMERAS, Population, check_disjoint, population_pids, render_population

__all__ = [
    "CACHE_ENV",
    "FORMAT_VERSION",
    "LABEL",
    "PRETRAIN_CAMERAS",
    "Population",
    "PretrainConfig",
    "PretrainNet",
    "check_disjoint",
    "default_cache_dir",
    "ensure_pretrained",
    "population_pids",
    "pretrained_start",
    "read_record",
    "render_population",
    "train_classifier",
]
