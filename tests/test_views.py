"""Notebooks 04 and 05 over a sweep's seeds (idkl_lib.experiments.views): pairing, running, the statistics against
hand-computed values, the table's verdicts, and the results page's views tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from idkl_lib.experiments import results_doc
from idkl_lib.experiments.compare import paired_difference
from idkl_lib.experiments.run_table import Run
from idkl_lib.experiments.views import (
    STATISTICS,
    pair_checkpoints,
    read_views,
    run_views,
    summarise_views,
    views_table,
)
from idkl_lib.notebook.evidence import BASELINE_SHARED, ENHANCED
from idkl_lib.runs import EMBEDDINGS_STEP, GRADCAM_STEP, VIEWS_NAME

from .sweep_standins import parameter_notebook

# Stand-ins for notebooks 04 and 05: every statistic of a view is the number stored in that view's checkpoint file
# (the IDKL checkpoint for the enhanced view, the baseline's for the shared one), plus the step's own offset.
STANDIN = """
import json, pathlib
step = pathlib.Path(step_dir)
step.mkdir(parents=True, exist_ok=True)
with open(pathlib.Path(run_dir) / "executed.txt", "a") as fh:
    fh.write(step.name + "\\n")
idkl_value = float(pathlib.Path(checkpoint).read_text()) + OFFSET
base_value = float(pathlib.Path(baseline_checkpoint).read_text()) + OFFSET
keys = KEYS
views = {ENHANCED: {k: idkl_value for k in keys}, BASELINE: {k: base_value for k in keys}}
if OFFSET == 0:
    for row in views.values():
        row["box_area"] = 0.5
else:  # notebook 05 keys its views by name and puts the label inside
    views = {name: {"label": label, **views[label]} for name, label in (("enhanced", ENHANCED), ("shared", BASELINE))}
(step / "metrics.json").write_text(json.dumps({"num_queries": NUM_QUERIES, "views": views}))
"""


def _standin(path: Path, keys: list[str], offset: float, extra: dict[str, object]) -> None:
    params = {
        "run_dir": "",
        "step_dir": "",
        "checkpoint": "",
        "baseline_checkpoint": "",
        "seed": 0,
        "cpu_threads": 0,
        **extra,
    }
    body = STANDIN.replace("KEYS", repr(keys)).replace("OFFSET", repr(offset))
    body = body.replace("ENHANCED", repr(ENHANCED)).replace("BASELINE", repr(BASELINE_SHARED))
    body = body.replace("NUM_QUERIES", "num_queries" if "num_queries" in extra else "None")
    parameter_notebook(path, params, body)


def _keys(step: str) -> list[str]:
    return [s.key for s in STATISTICS if s.step == step]


@pytest.fixture
def standin_notebooks(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _standin(folder / f"{GRADCAM_STEP}.ipynb", _keys(GRADCAM_STEP), 0.0, {"num_queries": 3})
    _standin(folder / f"{EMBEDDINGS_STEP}.ipynb", _keys(EMBEDDINGS_STEP), 10.0, {"max_points": 100})
    return folder


def _cell(root: Path, name: str, seed: int, value: float) -> Run:
    """A finished sweep cell whose checkpoint file holds ``value``."""
    path = root / f"{name}__seed-{seed}"
    (path / "02_train").mkdir(parents=True)
    (path / "02_train" / "checkpoint.pth").write_text(str(value))
    return Run(path, {"loss_preset": name, "seed": seed}, seed, {"R1": 1.0}, [], config=name)


def test_paired_difference_matches_a_hand_computed_case() -> None:
    d = paired_difference([1.0, 2.0, 4.0], [0.0, 1.0, 1.0])  # differences 1, 1, 3
    std = math.sqrt(((1 - 5 / 3) ** 2 * 2 + (3 - 5 / 3) ** 2) / 2)
    assert d["pairs"] == 3 and d["mean_diff"] == pytest.approx(5 / 3)
    assert d["ci95"] == pytest.approx(4.302652729911275 * std / math.sqrt(3))  # t(0.975, 2 dof)
    assert d["t_p"] == pytest.approx(0.129612, abs=1e-6)  # t = 2.5 with 2 dof, two-sided
    assert d["inside_noise"] is True and d["wilcoxon_p"] is None
    assert paired_difference([1.0], [0.0])["inside_noise"] is None
    with pytest.raises(ValueError, match="differ in number"):
        paired_difference([1.0, 2.0], [1.0])


def test_pair_checkpoints_pairs_by_seed_and_names_the_known_configurations(tmp_path: Path) -> None:
    runs = [_cell(tmp_path, "full", s, 0.6) for s in (3, 4, 5)] + [_cell(tmp_path, "baseline", s, 0.5) for s in (4, 3)]
    pairs = pair_checkpoints(runs, "full", "baseline")
    assert list(pairs) == [3, 4]  # seed 5 has no baseline
    assert pairs[3] == (
        tmp_path / "full__seed-3/02_train/checkpoint.pth",
        tmp_path / "baseline__seed-3/02_train/checkpoint.pth",
    )
    with pytest.raises(ValueError, match=r"--idkl 'ful' is not a configuration.*\['baseline', 'full'\]"):
        pair_checkpoints(runs, "ful", "baseline")
    with pytest.raises(ValueError, match="no seed has finished runs of both"):
        pair_checkpoints(runs[:1] + [_cell(tmp_path, "baseline", 9, 0.5)], "full", "baseline")


@pytest.mark.notebooks
def test_run_views_runs_both_notebooks_per_seed_and_the_summary_is_right(
    tmp_path: Path, standin_notebooks: Path
) -> None:
    idkl = {0: 0.70, 1: 0.62, 2: 0.66}
    base = {0: 0.60, 1: 0.61, 2: 0.58}
    runs = [_cell(tmp_path / "sweep", "full", s, v) for s, v in idkl.items()]
    runs += [_cell(tmp_path / "sweep", "baseline", s, v) for s, v in base.items()]
    pairs = pair_checkpoints(runs, "full", "baseline")
    out = tmp_path / "views"
    params = {"04_gradcam.num_queries": 7, "cpu_threads": 1}
    folders = run_views(pairs, out, params, notebooks_dir=standin_notebooks, verbose=False)
    assert folders == [out / f"seed-{s}" for s in idkl]
    assert json.loads((folders[0] / GRADCAM_STEP / "metrics.json").read_text())["num_queries"] == 7

    summary = summarise_views(dict(zip(pairs, folders, strict=True)), "full", "baseline", params)
    assert summary["seeds"] == [0, 1, 2] and summary["box_area"] == 0.5
    assert summary["params"] == {"04_gradcam.num_queries": 7}  # the machine's settings are not recorded
    rows = {row["key"]: row for row in summary["statistics"]}
    assert set(rows) == {s.key for s in STATISTICS}
    box = rows["box_mass"]
    assert box["views"][ENHANCED]["values"] == pytest.approx(list(idkl.values()))
    assert box["views"][BASELINE_SHARED]["mean"] == pytest.approx(sum(base.values()) / 3)
    assert box["difference"] == pytest.approx(paired_difference(list(idkl.values()), list(base.values())))
    ratio = rows["cross_ratio"]  # notebook 05's statistics, keyed by view name there
    assert ratio["views"][ENHANCED]["values"] == pytest.approx([v + 10 for v in idkl.values()])

    # finished seeds are not run again; the summary reads the same folders
    run_views(pairs, out, params, notebooks_dir=standin_notebooks, verbose=False)
    assert (folders[0] / "executed.txt").read_text().splitlines() == [GRADCAM_STEP, EMBEDDINGS_STEP]


def _summary(diffs: dict[str, list[float]]) -> dict[str, object]:
    """A summary over 3 seeds where the baseline's value is 0.5 and IDKL's is 0.5 + the given differences."""
    rows = []
    for stat in STATISTICS:
        ours = [0.5 + d for d in diffs.get(stat.key, [0.0, 0.0, 0.0])]
        rows.append(
            {
                "step": stat.step,
                "key": stat.key,
                "label": stat.label,
                "claim": stat.claim,
                "views": {
                    ENHANCED: {"mean": sum(ours) / 3, "ci95": 0.01},
                    BASELINE_SHARED: {"mean": 0.5, "ci95": None},
                },
                "difference": paired_difference(ours, [0.5] * 3),
            }
        )
    return {"schema": 1, "seeds": [0, 1, 2], "box_area": 0.6, "statistics": rows}


def test_the_table_says_whether_each_difference_has_the_claims_sign_beyond_noise() -> None:
    table = views_table(
        _summary(
            {"box_mass": [0.10, 0.12, 0.11], "cross_ratio": [0.10, 0.12, 0.11], "silhouette_modality": [-0.1, 0.1, 0.0]}
        )
    )
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    box = lines["Grad-CAM share on the person band (uniform map: 0.600)"]
    assert box.endswith("| +0.110 [+0.085, +0.135] p=0.003 | higher | yes |"), box
    assert lines["same/different-id cross-modality distance ratio"].endswith("| lower | no (opposite) |")
    assert lines["silhouette by modality"].endswith("*noise* | lower | no (noise) |")
    assert lines["query-match cosine similarity"].endswith("| – | – |")  # no claim about it
    assert "0.610 [0.600, 0.620]" in box and "| 0.500 |" in box


def test_the_results_page_renders_an_exported_views_summary(tmp_path: Path) -> None:
    out = tmp_path / "views-out"
    out.mkdir()
    (out / VIEWS_NAME).write_text(json.dumps(_summary({"box_mass": [0.1, 0.1, 0.2]})))
    results = tmp_path / "results"
    exported = results_doc.export_sweep(out, results / "pretrained-views")
    assert read_views(exported) == read_views(out)
    (results / "tables.yaml").write_text("pretrained-views:\n  sweeps: [pretrained-views]\n  show: [views]\n")
    assert results_doc.render_tables(results) == {"pretrained-views": views_table(read_views(out))}
    (results / "tables.yaml").write_text("bad:\n  sweeps: [pretrained-views]\n  show: [views, summary]\n")
    with pytest.raises(ValueError, match="'views' \\(from views.json\\) is shown alone"):
        results_doc.load_tables(results)
    with pytest.raises(FileNotFoundError, match="experiments.views SWEEP"):
        read_views(tmp_path / "nowhere")
