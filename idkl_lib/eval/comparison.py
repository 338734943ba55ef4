"""Two models' results through one protocol, side by side: what makes two evaluations comparable
(:class:`EvalSettings`: the same gallery trials, retrieval feature and flip setting) and the difference per metric
(IDKL - baseline). Loading checkpoints and finding a run's baseline is notebook 03's side
(:mod:`idkl_lib.notebook.comparison`).

Tables are "tidy": one row per (protocol setting, metric) with the two values and their difference
(:func:`comparison_rows`); ``metrics.json`` stores ``{"baseline": {"checkpoint", "protocols"}, "vs_baseline":
{setting: {metric: difference}}}`` (:meth:`Comparison.metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.records import VIDataset
from ..models.idkl import Which
from .protocols import evaluate_dataset
from .retrieval import FeatureArray, ProtocolResult

__all__ = [
    "COMPARED_METRICS",
    "DIFFERENCE_METRICS",
    "EvalSettings",
    "comparison_rows",
    "metric_differences",
    "protocol_rows",
    "signed",
]

COMPARED_METRICS: tuple[str, ...] = ("R1", "R5", "R10", "mAP", "mINP")
"""The metrics of the side-by-side table (percent)."""
DIFFERENCE_METRICS: tuple[str, ...] = ("R1", "mAP", "mINP")
"""The metrics of ``metrics.json``'s ``vs_baseline`` (IDKL - baseline, percentage points)."""


@dataclass(frozen=True)
class EvalSettings:
    """What makes two evaluations comparable: the retrieval feature, flip averaging, the gallery trials (their
    number and the seed of LLCM's) and whether k-reciprocal re-ranking is reported too (``+rerank`` rows)."""

    feature: Which = "shared"
    flip: bool = False
    num_trials: int = 10
    seed: int = 0
    rerank: bool = False

    def evaluate(
        self, dataset: VIDataset, query_feats: FeatureArray, gallery_feats: FeatureArray
    ) -> dict[str, ProtocolResult]:
        """The dataset's standard protocol set on these features (and its ``+rerank`` rows when ``rerank``)."""
        results = evaluate_dataset(dataset, query_feats, gallery_feats, num_trials=self.num_trials, seed=self.seed)
        if self.rerank:
            results |= evaluate_dataset(
                dataset, query_feats, gallery_feats, num_trials=self.num_trials, seed=self.seed, rerank=True
            )
        return results

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "flip": self.flip, "num_trials": self.num_trials, "seed": self.seed,
                "rerank": self.rerank}  # fmt: skip


def signed(value: float, decimals: int = 2) -> str:
    """``+1.25`` / ``−3.90`` (a true minus sign) / ``0.00``: a difference as shown in the tables and sentences."""
    text = f"{abs(value):.{decimals}f}"
    if float(text) == 0.0:
        return text
    return f"+{text}" if value > 0 else f"\u2212{text}"


def protocol_rows(results: Mapping[str, ProtocolResult]) -> dict[str, dict[str, float | int]]:
    """``{setting: {R1, R5, R10, R20, mAP, mINP (percent), num_queries}}``: notebook 03's ``protocols`` layout."""
    return {name: {**res.mean.as_dict(), "num_queries": int(res.mean.num_queries)} for name, res in results.items()}


def comparison_rows(
    idkl: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = COMPARED_METRICS,
) -> list[dict[str, Any]]:
    """The tidy comparison: one row ``{setting, metric, idkl, baseline, difference}`` per setting and metric
    (``difference = idkl - baseline``), settings in ``idkl``'s order.

    Raises:
        ValueError: The two sides do not have the same settings, or a metric is missing (they were not evaluated
            with the same protocol).
    """
    if list(idkl) != list(baseline):
        raise ValueError(
            f"IDKL and baseline results cover different protocol settings: {list(idkl)} vs {list(baseline)}; "
            "evaluate both with the same dataset and settings"
        )
    rows = []
    for setting, values in idkl.items():
        for metric in metrics:
            if metric not in values or metric not in baseline[setting]:
                raise ValueError(f"metric {metric!r} missing for {setting!r}; have {sorted(values)}")
            a, b = float(values[metric]), float(baseline[setting][metric])
            rows.append({"setting": setting, "metric": metric, "idkl": a, "baseline": b, "difference": a - b})
    return rows


def metric_differences(
    idkl: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DIFFERENCE_METRICS,
) -> dict[str, dict[str, float]]:
    """``{setting: {metric: idkl - baseline}}`` (``metrics.json``'s ``vs_baseline``)."""
    out: dict[str, dict[str, float]] = {}
    for row in comparison_rows(idkl, baseline, metrics):
        out.setdefault(row["setting"], {})[row["metric"]] = row["difference"]
    return out
