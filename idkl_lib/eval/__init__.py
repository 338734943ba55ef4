"""Evaluation: the rank core, k-reciprocal re-ranking and the SYSU-MM01 / RegDB / LLCM protocols."""

from .protocols import ProtocolResult as ProtocolResult
from .protocols import evaluate_dataset as evaluate_dataset
from .protocols import evaluate_llcm as evaluate_llcm
from .protocols import evaluate_regdb as evaluate_regdb
from .protocols import evaluate_sysu as evaluate_sysu
from .protocols import llcm_gallery_trials as llcm_gallery_trials
from .protocols import mean_over_splits as mean_over_splits
from .protocols import sysu_gallery_trials as sysu_gallery_trials
from .rank import RankResult as RankResult
from .rank import evaluate_rank as evaluate_rank
from .rerank import RerankConfig as RerankConfig
from .rerank import k_reciprocal_rerank as k_reciprocal_rerank

__all__ = [
    "ProtocolResult",
    "RankResult",
    "RerankConfig",
    "evaluate_dataset",
    "evaluate_llcm",
    "evaluate_rank",
    "evaluate_regdb",
    "evaluate_sysu",
    "k_reciprocal_rerank",
    "llcm_gallery_trials",
    "mean_over_splits",
    "sysu_gallery_trials",
]
