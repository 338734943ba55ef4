"""IDKL and its baseline, evaluated side by side (notebook 03): two checkpoints through one protocol, with the same
dataset, gallery trials, retrieval feature and flip setting (:class:`~idkl_lib.eval.comparison.EvalSettings`), and
the difference per metric (IDKL - baseline).

The baseline is the network trained without the purifier and the distillation losses (the pipeline's baseline step,
:data:`idkl_lib.runs.BASELINE_STEP`). A run without it (a sweep cell trains only IDKL) skips the comparison:
:func:`find_baseline_checkpoint` returns ``None`` and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from idkl_lib.checkpoint import load_checkpoint, load_trained_model
from idkl_lib.config import TrainConfig
from idkl_lib.data.records import VIDataset
from idkl_lib.eval.comparison import (
    COMPARED_METRICS,
    DIFFERENCE_METRICS,
    EvalSettings,
    comparison_rows,
    metric_differences,
    protocol_rows,
)
from idkl_lib.eval.features import extract_features
from idkl_lib.eval.retrieval import FeatureArray, ProtocolResult
from idkl_lib.runs import BASELINE_STEP, CHECKPOINT_NAME, optional_checkpoint, step_path

__all__ = [
    "CheckpointEvaluation",
    "Comparison",
    "compare_checkpoints",
    "evaluate_checkpoint",
    "find_baseline_checkpoint",
]


@dataclass(frozen=True)
class CheckpointEvaluation:
    """One checkpoint through the protocol set: its path, training dataset, loss preset, epoch and results."""

    checkpoint: Path
    dataset: str
    loss_preset: str
    epoch: int
    results: dict[str, ProtocolResult]

    def protocols(self) -> dict[str, dict[str, float | int]]:
        """:func:`protocol_rows` of :attr:`results`."""
        return protocol_rows(self.results)


def find_baseline_checkpoint(run_dir: str | os.PathLike[str], baseline_checkpoint: str = "") -> tuple[Path | None, str]:
    """The baseline checkpoint to compare with, or ``None`` and one line saying why the comparison is skipped.

    ``baseline_checkpoint`` given: that file, which must exist (``FileNotFoundError`` naming it otherwise: the user
    asked for it). Not given: ``<run_dir>/02_train_baseline/checkpoint.pth`` when it exists, else ``None``.
    """
    if baseline_checkpoint:
        path = Path(baseline_checkpoint).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"parameter baseline_checkpoint={baseline_checkpoint!r}: {path.resolve()} does not exist; pass the "
                "checkpoint of a model trained with loss_preset='baseline', or '' to skip the comparison"
            )
        return path, ""
    found = optional_checkpoint(run_dir, "", BASELINE_STEP)  # the same lookup as notebooks 04 and 05
    if found is not None:
        return found, ""
    path = step_path(run_dir, BASELINE_STEP) / CHECKPOINT_NAME
    return None, (
        f"No baseline checkpoint at {path}: the IDKL-vs-baseline comparison is skipped. To get it, run notebook 02 "
        f"with with_baseline=True (its default on synthetic data in JupyterLab; the pipeline has a {BASELINE_STEP} "
        "step) or with loss_preset='baseline' and run_tag='baseline', or pass baseline_checkpoint."
    )


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    dataset: VIDataset,
    settings: EvalSettings,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
    label: str = "",
    features: tuple[FeatureArray, FeatureArray] | None = None,
    trained_on: tuple[str, str | os.PathLike[str]] | None = None,
) -> CheckpointEvaluation:
    """Evaluate one checkpoint on ``dataset``'s test split with ``settings``.

    Args:
        checkpoint: A checkpoint written by :func:`idkl_lib.train.train`; the model is rebuilt from its config.
        features: ``(query, gallery)`` features of this checkpoint already extracted with ``settings`` (notebook 03
            has them); the model is then not run again.

    """
    if features is None:
        model, cfg, state = load_trained_model(checkpoint, device)
        _check_trained_on(checkpoint, cfg.dataset, trained_on)
        common: dict[str, Any] = dict(which=settings.feature, flip=settings.flip, batch_size=batch_size,
                                      num_workers=num_workers, device=next(model.parameters()).device,
                                      progress=progress)  # fmt: skip
        prefix = f"{label}: " if label else ""
        features = (
            extract_features(model, dataset.query, cfg.height, cfg.width, desc=f"{prefix}query images", **common),
            extract_features(model, dataset.gallery, cfg.height, cfg.width, desc=f"{prefix}gallery images", **common),
        )
    else:
        state = load_checkpoint(checkpoint)
        cfg = TrainConfig.from_dict(state["config"])
        _check_trained_on(checkpoint, cfg.dataset, trained_on)
    return CheckpointEvaluation(Path(checkpoint), cfg.dataset, cfg.loss_preset, int(state["epoch"]),
                                settings.evaluate(dataset, *features))  # fmt: skip


def _check_trained_on(
    checkpoint: str | os.PathLike[str], dataset: str, trained_on: tuple[str, str | os.PathLike[str]] | None
) -> None:
    if trained_on is not None and trained_on[0] != dataset:
        raise ValueError(
            f"checkpoint {checkpoint} was trained on {dataset!r} but {trained_on[1]} on {trained_on[0]!r}; "
            "compare models trained on the same dataset"
        )


@dataclass(frozen=True)
class Comparison:
    """Two checkpoints evaluated with the same :class:`EvalSettings` (see :func:`compare_checkpoints`)."""

    idkl: CheckpointEvaluation
    baseline: CheckpointEvaluation
    settings: EvalSettings

    def rows(self, metrics: Sequence[str] = COMPARED_METRICS) -> list[dict[str, Any]]:
        """:func:`comparison_rows` of the two evaluations."""
        return comparison_rows(self.idkl.protocols(), self.baseline.protocols(), metrics)

    def differences(self, metrics: Sequence[str] = DIFFERENCE_METRICS) -> dict[str, dict[str, float]]:
        """:func:`metric_differences` of the two evaluations."""
        return metric_differences(self.idkl.protocols(), self.baseline.protocols(), metrics)

    def metrics(self) -> dict[str, Any]:
        """The two keys notebook 03 adds to its ``metrics.json``: ``baseline`` (``checkpoint``, ``protocols`` in the
        layout of 03's own ``protocols``) and ``vs_baseline`` (``{setting: {R1, mAP, mINP}}``, IDKL - baseline)."""
        return {
            "baseline": {"checkpoint": str(self.baseline.checkpoint), "protocols": self.baseline.protocols()},
            "vs_baseline": self.differences(),
        }


def compare_checkpoints(
    checkpoint: str | os.PathLike[str],
    baseline_checkpoint: str | os.PathLike[str],
    dataset: VIDataset,
    settings: EvalSettings,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
    features: tuple[FeatureArray, FeatureArray] | None = None,
) -> Comparison:
    """Evaluate the IDKL ``checkpoint`` and the ``baseline_checkpoint`` with one protocol: the same dataset, gallery
    trials, feature and flip setting (``settings``). ``features``: the IDKL checkpoint's features, when already
    extracted with ``settings`` (the baseline's are always computed here).

    Raises:
        ValueError: The baseline was trained on another dataset than the IDKL model, or the two evaluations did not
            use the same galleries (a protocol setting differs).
    """
    common: dict[str, Any] = dict(device=device, batch_size=batch_size, num_workers=num_workers, progress=progress)
    idkl = evaluate_checkpoint(checkpoint, dataset, settings, label="IDKL", features=features, **common)
    baseline = evaluate_checkpoint(
        baseline_checkpoint, dataset, settings, label="baseline", trained_on=(idkl.dataset, checkpoint), **common
    )
    for name, res in idkl.results.items():
        other = baseline.results.get(name)
        if other is None or other.settings != res.settings:
            raise ValueError(f"{name}: the baseline was not evaluated with the same protocol settings as IDKL")
    return Comparison(idkl, baseline, settings)
