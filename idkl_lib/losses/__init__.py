"""IDKL losses (docs/method.md#3-losses): pure vectorised functions and weighted objective :func:`compute_losses`."""

from ..distances import off_diagonal, pairwise_distance
from .alignment import (
    csa1_inter_loss,
    csa1_intra_loss,
    csa2_inter_loss,
    csa2_intra_loss,
    distance_logits,
    set_level_logits,
    symmetric_kl,
    tgsa_inter_loss,
    tgsa_intra_cross_loss,
    tgsa_intra_loss,
)
from .identity import identity_loss
from .modality import (
    check_modality,
    confuser_pseudo_labels,
    modality_confuser_loss,
    modality_discriminator_loss,
    split_by_modality,
)
from .objective import BatchLayout, check_batch_layout, compute_losses
from .purifier import entropy_margin_loss, modality_centroid_distance, modality_centroid_loss, sample_entropy
from .triplet import TRIPLET_MARGIN, batch_hard_triplet_loss, hard_example_mining

__all__ = [
    "TRIPLET_MARGIN",
    "BatchLayout",
    "batch_hard_triplet_loss",
    "check_batch_layout",
    "check_modality",
    "compute_losses",
    "confuser_pseudo_labels",
    "csa1_inter_loss",
    "csa1_intra_loss",
    "csa2_inter_loss",
    "csa2_intra_loss",
    "distance_logits",
    "entropy_margin_loss",
    "hard_example_mining",
    "identity_loss",
    "modality_centroid_distance",
    "modality_centroid_loss",
    "modality_confuser_loss",
    "modality_discriminator_loss",
    "off_diagonal",
    "pairwise_distance",
    "sample_entropy",
    "set_level_logits",
    "split_by_modality",
    "symmetric_kl",
    "tgsa_inter_loss",
    "tgsa_intra_cross_loss",
    "tgsa_intra_loss",
]
