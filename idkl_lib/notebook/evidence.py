"""This run's evidence beside the paper's claims: one or two sentences built from the metrics a notebook computed.

The notebooks state what the paper claims as the paper's claim; right after, a code cell prints what this run's own
numbers say about it, in whichever direction they point:

* :func:`retrieval_evidence` (notebook 03): does IDKL retrieve better than the baseline trained without distillation?
* :func:`cam_evidence` (notebook 04): does the enhanced shared feature's similarity Grad-CAM lie more on the person than
  the baseline's shared feature (and than a uniform map)?
* :func:`gap_evidence` (notebook 05): does the enhanced feature bring a person's two modalities closer than the
  baseline's shared feature, and does it mix the modalities?

One training seed cannot separate a small difference from seed noise; every sentence says so and points to the sweep
over seeds (``python -m idkl_lib.experiments.sweep``, notebook 06).
"""

from __future__ import annotations

from collections.abc import Mapping

from idkl_lib.data.registry import DATASETS
from idkl_lib.eval.comparison import signed
from idkl_lib.runs import BASELINE_STEP

__all__ = ["SEEDS_HINT", "VIEWS_HINT", "cam_evidence", "gap_evidence", "retrieval_evidence"]

SEEDS_HINT = "This is one training seed; a sweep over seeds (notebook 06) shows whether the difference holds."
VIEWS_HINT = (
    "This is one training seed; python -m idkl_lib.experiments.views runs this notebook on every seed of a sweep and "
    "says whether the difference holds (docs/results.md, section 6.5)."
)
ENHANCED, BASELINE_SHARED = "enhanced shared (IDKL)", "shared (w/o distillation)"
"""The labels of :data:`idkl_lib.viz.gradcam_study.FEATURE_VIEWS` that the claims of notebooks 04 and 05 compare."""


def _direction(diff: float, decimals: int) -> int:
    """-1, 0 or 1: the sign of ``diff`` as it shows with ``decimals`` digits (a shown 0.0 is a tie)."""
    shown = round(diff, decimals)
    return (shown > 0) - (shown < 0)


def retrieval_evidence(
    idkl: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]] | None,
    setting: str | None = None,
    *,
    synthetic: bool = False,
) -> str:
    """This run's answer to "IDKL retrieves better than the baseline" in one or two sentences.

    Args:
        idkl, baseline: ``{setting: {"R1": ..., "mAP": ..., ...}}`` in percent (notebook 03's ``protocols``);
            ``baseline`` None when the run has no baseline model.
        setting: The protocol setting to quote; default: the dataset's main one (its rank lists'), else the first.
        synthetic: The data are the synthetic demo's (said in the sentence).
    """
    if setting is None:  # the dataset's main protocol (the rank lists' one) when present, else the first
        main = [name for name in idkl if name in {info.main_view for info in DATASETS.values()}]
        setting = main[0] if main else next(iter(idkl))
    if baseline is None:
        return (
            f"This run has no baseline model, so the claim is not tested here; the pipeline's {BASELINE_STEP} step "
            "(or notebook 02 with loss_preset='baseline') trains one."
        )
    if setting not in idkl or setting not in baseline:
        raise KeyError(f"setting {setting!r} is not in both results; IDKL has {list(idkl)}")
    a, b = idkl[setting], baseline[setting]
    if not all(m in a and m in b for m in ("R1", "mAP")):
        raise KeyError(f"{setting}: R1 and mAP are needed on both sides; have {sorted(a)} and {sorted(b)}")
    quoted = ", ".join(f"{m} {a[m]:.1f} vs {b[m]:.1f} ({signed(a[m] - b[m], 1)})" for m in ("R1", "mAP"))
    signs = {m: _direction(a[m] - b[m], 1) for m in ("R1", "mAP")}
    where = "on this synthetic demo" if synthetic else "on this run"
    if all(s > 0 for s in signs.values()):
        verdict = f"{where} IDKL retrieves better, as the paper reports"
    elif all(s < 0 for s in signs.values()):
        verdict = f"{where} the baseline retrieves better, the opposite of the paper's result"
    elif all(s == 0 for s in signs.values()):
        verdict = f"{where} the two retrieve equally well"
    else:
        parts = {"IDKL ahead on": 1, "the baseline ahead on": -1, "even on": 0}
        said = [f"{text} {', '.join(m for m, s in signs.items() if s == sign)}" for text, sign in parts.items()
                if sign in signs.values()]  # fmt: skip
        verdict = f"{where} the result is mixed ({'; '.join(said)})"
    return f"This run, {setting}, IDKL vs baseline: {quoted}: {verdict}. {SEEDS_HINT}"


def cam_evidence(cam_stats: Mapping[str, Mapping[str, float]], num_queries: int | None = None) -> str:
    """This run's answer to "the enhanced shared feature looks more at the person than the baseline's shared
    feature": the share of the CAM mass in the person's band (``box_mass``) of the two features and of a uniform map
    (``box_area``).

    Args:
        cam_stats: ``{feature label: {"box_mass", "box_area", ...}}`` as notebook 04 computes it
            (:func:`idkl_lib.viz.gradcam_study.cam_statistics` per view); the baseline's label may be absent.
        num_queries: How many query pairs the numbers average (quoted).
    """
    if ENHANCED not in cam_stats:
        raise KeyError(f"no {ENHANCED!r} view in the CAM statistics; have {list(cam_stats)}")
    enhanced = cam_stats[ENHANCED]
    e, uniform = float(enhanced["box_mass"]), float(enhanced["box_area"])
    over = f" over {num_queries} query pairs" if num_queries else ""
    vs_uniform = _direction(e - uniform, 3)
    chance = (
        "more than a uniform map would"
        if vs_uniform > 0
        else "no more than a uniform map would, so its maps do not concentrate on the person"
    )
    if BASELINE_SHARED not in cam_stats:
        return (
            f"This run{over}: the enhanced feature puts {e:.3f} of its CAM on the person's band, a uniform map "
            f"{uniform:.3f}: {chance}. Without a baseline model the paper's comparison is not made here."
        )
    b = float(cam_stats[BASELINE_SHARED]["box_mass"])
    vs_baseline = _direction(e - b, 3)
    if vs_baseline > 0:
        verdict = f"the enhanced feature puts more of its map on the person than the baseline's ({chance})"
        verdict += ", as the paper argues" if vs_uniform > 0 else ""
    elif vs_baseline < 0:
        verdict = (
            "the enhanced feature puts less of its map on the person than the baseline's shared feature, contrary to "
            f"the paper's argument, and {chance}"
        )
    else:
        verdict = f"the enhanced feature puts as much of its map on the person as the baseline's ({chance})"
        verdict += ": this run does not show the paper's effect"
    return (
        f"This run{over}: share of the CAM on the person's band: enhanced {e:.3f}, baseline shared {b:.3f}, uniform "
        f"map {uniform:.3f}: {verdict}. Single maps are noisy. {VIEWS_HINT}"
    )


def gap_evidence(gap: Mapping[str, Mapping[str, float]]) -> str:
    """This run's answer to "distillation closes the modality gap": the same/different-identity distance ratio and
    the silhouette by modality of the enhanced feature against the baseline's shared feature.

    Args:
        gap: ``{view name: modality_gap_stats(...)}`` as notebook 05 computes it (names ``"enhanced"`` and
            ``"shared"``, the baseline's; ``"shared"`` may be absent).
    """
    if "enhanced" not in gap:
        raise KeyError(f"no 'enhanced' view in the modality-gap numbers; have {list(gap)}")
    e = gap["enhanced"]
    mixed = abs(float(e["silhouette_modality"])) < 0.05
    mixing = "mixes the modalities" if mixed else "still separates the modalities"
    if "shared" not in gap:
        return (
            f"This run: the enhanced feature's same/different-identity distance ratio is {e['cross_ratio']:.2f} "
            f"and its silhouette by modality {e['silhouette_modality']:+.2f} (it {mixing}). Without a baseline model "
            "the paper's comparison is not made here."
        )
    b = gap["shared"]
    closer = _direction(float(b["cross_ratio"]) - float(e["cross_ratio"]), 2)
    if closer > 0:
        verdict = (
            "the enhanced feature brings a person's two modalities closer than the baseline does, as the paper claims"
        )
    elif closer < 0:
        verdict = "the baseline's shared feature brings a person's two modalities closer, contrary to the paper's claim"
    else:
        verdict = "the two features bring a person's two modalities equally close"
    both_mixed = mixed and abs(float(b["silhouette_modality"])) < 0.05
    mixing_text = (
        "both mix the modalities (silhouette by modality near 0), so that part of the claim does not separate them"
        if both_mixed
        else f"the enhanced feature {mixing}"
    )
    return (
        f"This run: same/different-identity distance ratio enhanced {e['cross_ratio']:.2f} vs baseline shared "
        f"{b['cross_ratio']:.2f} (lower: closer), silhouette by modality {e['silhouette_modality']:+.2f} vs "
        f"{b['silhouette_modality']:+.2f}: {verdict}; {mixing_text}. {VIEWS_HINT}"
    )
