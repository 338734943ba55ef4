"""Sweeps (idkl_lib.experiments.sweep) and the run comparison (idkl_lib.experiments.compare, notebook 06).

The sweep machinery is tested with stand-in 02_train / 03_evaluate notebooks written into tmp_path that write
metrics shaped like the real ones from known formulas (fast), and the real notebook 06 compares them; the same
sweep with the real notebooks and the ``ci`` preset is the slow test at the end.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from idkl_lib.experiments import compare, sweep
from idkl_lib.experiments.sweep import Experiment, load_experiment, parse_sweep, run_sweep, split_values

from .sweep_standins import parameter_notebook

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
PROTOCOL = "sysu/all-search/single-shot"

TRAIN = """
import json, pathlib
step = pathlib.Path(step_dir); step.mkdir(parents=True, exist_ok=True)
if seed == 13 and loss_preset == "full":
    raise RuntimeError("cell failure on purpose")
full = loss_preset == "full"
history = [{"epoch": 1.0, "step": float(s), "lr": 0.01, "id": 2.0 - 0.1 * s, "tri_sh": 1.0,
            "tgsa_inter": 0.5 if full else 0.0, "total": 3.0 - 0.1 * s + (0.5 if full else 0.0)} for s in (1, 2)]
(step / "history.json").write_text(json.dumps(history))
(step / "metrics.json").write_text(json.dumps({"loss_preset": loss_preset, "epochs_run": 1, "eval": {}}))
"""
EVALUATE = """
import json, pathlib
step = pathlib.Path(step_dir); step.mkdir(parents=True, exist_ok=True)
full = loss_preset == "full"
r1 = 50.0 + seed + (5.0 + 0.5 * seed if full else 0.0)
row = {"R1": r1, "mAP": 40.0 + seed + ((seed - 0.5) * 2 if full else 0.0), "mINP": 30.0 + seed, "num_queries": 8}
(step / "metrics.json").write_text(json.dumps({"protocols": {"@P": row}, "cmc": {"@P": [r1, 90.0, 100.0]}}))
""".replace("@P", PROTOCOL)


@pytest.fixture()
def nb_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    common = {"run_dir": "x", "step_dir": "x", "loss_preset": "sysu", "seed": 0, "epochs": 1}
    parameter_notebook(folder / "02_train.ipynb", common, TRAIN)
    parameter_notebook(folder / "03_evaluate.ipynb", common, EVALUATE)
    shutil.copy(NOTEBOOKS_DIR / "06_compare_runs.ipynb", folder)
    return folder


# ------------------------------------------------------------------------------------------- parsing and checks


def test_parse_sweep_and_split() -> None:
    assert split_values("a,b,[1,2],{x: 1}") == ["a", "b", "[1,2]", "{x: 1}"]
    grid = parse_sweep(["loss_preset=baseline,+ip", "seed=0,1", "milestones=[16],[8,16]", "lr=1e-3,0.01"])
    assert grid == {"loss_preset": ["baseline", "+ip"], "seed": [0, 1], "milestones": [[16], [8, 16]],
                    "lr": [0.001, 0.01]}  # fmt: skip
    for bad, message in (("seed=", "empty value"), ("seed=0,,1", "empty value"), ("seed", "expected NAME=V1")):
        with pytest.raises(ValueError, match=message):
            parse_sweep([bad])


def test_cells_are_the_cartesian_product_with_readable_names() -> None:
    cells = Experiment(grid={"loss_preset": ["baseline", "+ip"], "seed": [0, 1, 2]}).cells()
    assert len(cells) == 6 and cells[0] == ("loss_preset-baseline__seed-0", {"loss_preset": "baseline", "seed": 0})
    assert cells[4][0] == "loss_preset-+ip__seed-1"
    assert Experiment(grid={"milestones": [[8, 16]]}).cells()[0][0] == "milestones-8_16"


def test_experiment_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("preset: ci\ngrid:\n  seed: [0, 1]\nparmas: {epochs: 1}\n")
    with pytest.raises(ValueError, match=r"exp.yaml: unknown key\(s\) \['parmas'\]"):
        load_experiment(path)
    path.write_text("grid:\n  seed: []\n")
    with pytest.raises(ValueError, match="grid.seed must be a non-empty list"):
        load_experiment(path)
    path.write_text("preset: ci\nsteps: [02_train]\nparams: {epochs: 2}\ngrid: {seed: [0, 1]}\n")
    exp = load_experiment(path)
    assert (exp.preset, exp.steps, exp.params, exp.grid) == ("ci", ("02_train",), {"epochs": 2}, {"seed": [0, 1]})
    with pytest.raises(FileNotFoundError, match="missing.yaml does not exist"):
        load_experiment(tmp_path / "missing.yaml")


@pytest.mark.parametrize("path", sorted((NOTEBOOKS_DIR.parent / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_experiment_files_name_real_parameters_and_values(path: Path) -> None:
    """``make ablation`` would fail hours in on a typo: every file's keys, names and values are checked up front."""
    exp = load_experiment(path)
    sweep._check(exp, NOTEBOOKS_DIR)
    names = [name for name, _params in exp.cells()]
    assert len(names) == len(set(names)) >= 2


def test_unknown_names_and_bad_values_fail_before_any_cell(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="sweep parameter 'sed': no notebook of the steps"):
        run_sweep(run, Experiment(grid={"sed": [0, 1]}), NOTEBOOKS_DIR, progress=False)
    with pytest.raises(ValueError, match=re.escape("sweep parameter loss_preset='+tgsa' must be one of")):
        run_sweep(run, Experiment(grid={"loss_preset": ["baseline", "+tgsa"]}), NOTEBOOKS_DIR, progress=False)
    with pytest.raises(ValueError, match="fixed parameter 'epochz'"):
        run_sweep(run, Experiment(grid={"seed": [0]}, params={"epochz": 1}), NOTEBOOKS_DIR, progress=False)
    with pytest.raises(ValueError, match="unknown step"):
        run_sweep(run, Experiment(grid={"seed": [0]}, steps=("02_trian",)), NOTEBOOKS_DIR, progress=False)
    assert not run.exists()
    assert sweep.main(["--run-dir", str(run), "--sweep", "seed=", "--notebooks-dir", str(NOTEBOOKS_DIR)]) == 2


def test_a_run_folder_without_metrics_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="run folder .*empty has no metrics.json"):
        compare.load_runs(runs=[tmp_path / "empty"])


def test_statistics_match_scipy() -> None:
    values = [61.0, 64.5, 63.0]
    s = compare.mean_ci(values)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert s["mean"] == pytest.approx(np.mean(values)) and s["std"] == pytest.approx(np.std(values, ddof=1))
    assert (s["mean"] - s["ci95"], s["mean"] + s["ci95"]) == pytest.approx((low, high))
    assert compare.mean_ci([5.0])["ci95"] is None


# ------------------------------------------------------------------------------------------------ executed sweeps


@pytest.mark.notebooks
def test_sweep_collects_cells_records_a_failure_resumes_and_compares(nb_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    exp = Experiment(grid={"loss_preset": ["baseline", "full"], "seed": [0, 1, 13]}, preset=None)
    result = run_sweep(run, exp, nb_dir, progress=False)
    assert result.failed == ["loss_preset-full__seed-13"]
    rows = json.loads((run / "results.json").read_text())["rows"]
    assert [r["state"] for r in rows] == ["done"] * 5 + ["failed"]
    assert "cell failure on purpose" in rows[5]["error"]
    done = {(r["loss_preset"], r["seed"]): r for r in rows if r["state"] == "done"}
    assert done[("full", 1)][f"03_evaluate.protocols.{PROTOCOL}.R1"] == 56.5
    assert done[("full", 1)]["train_time_s"] > 0
    header = (run / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["cell", "state", "loss_preset", "seed"]
    state = json.loads((run / "sweep.json").read_text())
    assert state["cells"]["loss_preset-full__seed-13"]["state"] == "failed"

    # notebook 06 ran on the finished cells: its numbers are scipy's on the formulas of the stand-in notebooks
    metrics = json.loads((run / "06_compare_runs" / "metrics.json").read_text())
    assert metrics["protocol"] == PROTOCOL and metrics["num_runs"] == 5 and metrics["baseline"] == "baseline"
    full = next(c for c in metrics["configs"] if c["config"] == "full")
    assert full["R1"]["mean"] == pytest.approx(np.mean([55.0, 56.5]))
    assert full["R1"]["ci95"] == pytest.approx(stats.t.ppf(0.975, 1) * stats.sem([55.0, 56.5]))
    paired = {r["metric"]: r for r in metrics["paired"]}
    assert paired["R1"]["mean_diff"] == pytest.approx(5.25) and not paired["R1"]["inside_noise"]
    assert paired["R1"]["t_p"] == pytest.approx(stats.ttest_rel([55.0, 56.5], [50.0, 51.0]).pvalue)
    assert paired["mAP"]["mean_diff"] == pytest.approx(0.0) and paired["mAP"]["inside_noise"]
    assert metrics["loss_terms"]["full"]["tgsa_inter"] == 0.5 and "tgsa_inter" in metrics["loss_terms"]["baseline"]
    assert (run / "index.html").is_file() and "06_compare_runs" in (run / "index.html").read_text()
    assert (run / "06_compare_runs" / "figures" / "summary.html").is_file()

    # resume: finished cells are skipped (their files untouched), failed ones run again
    stamp = (run / "loss_preset-baseline__seed-0" / "02_train.ipynb").stat().st_mtime_ns
    again = run_sweep(run, Experiment(grid=exp.grid, preset=None, compare=False), nb_dir, resume=True, progress=False)
    assert again.failed == result.failed
    assert (run / "loss_preset-baseline__seed-0" / "02_train.ipynb").stat().st_mtime_ns == stamp


@pytest.mark.slow
@pytest.mark.notebooks
def test_real_notebooks_tiny_sweep(tmp_path: Path) -> None:
    """2 presets x 2 seeds with the ci preset and the real notebooks 02, 03 and 06 (several minutes on 2 cores)."""
    exp = Experiment(
        grid={"loss_preset": ["baseline", "+ip"], "seed": [0, 1]},
        preset="ci",
        params={"data_root": str(tmp_path / "data"), "untrained_reference": False, "final_eval": False},
    )
    result = run_sweep(tmp_path / "run", exp, NOTEBOOKS_DIR, progress=False)
    assert not result.failed and len(result.rows) == 4
    assert not list((tmp_path / "run").glob("*/02_train_baseline")), "a cell's 02 trains no baseline of its own"
    metrics = json.loads((tmp_path / "run" / "06_compare_runs" / "metrics.json").read_text())
    assert [c["config"] for c in metrics["configs"]] == ["baseline", "+ip"] and metrics["configs"][0]["n"] == 2
    assert {"ip_entropy", "id", "total"} <= set(metrics["loss_terms"]["+ip"])


def test_the_pipeline_command_points_sweeps_to_their_own_command(capsys: pytest.CaptureFixture[str]) -> None:
    from idkl_lib.pipeline.cli import main as pipeline_main

    with pytest.raises(SystemExit) as exit_info:
        pipeline_main(["--run-dir", "unused", "--sweep", "loss_preset=baseline", "--notebooks-dir", str(NOTEBOOKS_DIR)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "python -m idkl_lib.experiments.sweep" in err
    assert sweep.main(["--run-dir", "unused", "--sweep", "loss_preset=", "--notebooks-dir", str(NOTEBOOKS_DIR)]) == 2
    assert "--sweep 'loss_preset=': empty value" in capsys.readouterr().err


def test_paired_comparison_pairs_by_seed_and_needs_two_pairs(tmp_path: Path) -> None:
    def run(preset: str, seed: int, r1: float) -> compare.Run:
        return compare.Run(tmp_path, {"loss_preset": preset, "seed": seed}, seed, {"R1": r1}, [])

    runs = [run("baseline", 0, 50.0), run("baseline", 1, 60.0), run("full", 1, 61.0), run("full", 0, 52.0)]
    compare._label(runs)
    baseline, rows = compare.paired_comparison(runs, metrics=("R1",))
    assert baseline == "baseline" and rows[0]["pairs"] == 2 and rows[0]["mean_diff"] == pytest.approx(1.5)
    assert rows[0]["t_p"] == pytest.approx(stats.ttest_rel([52.0, 61.0], [50.0, 60.0]).pvalue)
    _, single = compare.paired_comparison(runs[:3], metrics=("R1",))
    assert single[0]["pairs"] == 1 and single[0]["inside_noise"] is None
    with pytest.raises(ValueError, match="baseline configuration 'nope' is not among the runs"):
        compare.paired_comparison(runs, "nope")


def test_markdown_tables_give_mean_std_interval_and_paired_difference(tmp_path: Path) -> None:
    def run(preset: str, seed: int, r1: float) -> compare.Run:
        return compare.Run(tmp_path, {"loss_preset": preset, "seed": seed}, seed, {"R1": r1}, [], [], 10.0 * seed)

    runs = [run("baseline", s, v) for s, v in ((0, 50.0), (1, 60.0), (2, 55.0))]
    runs += [run("full", s, v) for s, v in ((0, 52.0), (1, 61.0), (2, 55.0))]
    compare._label(runs)
    text = compare.markdown_tables(runs, metrics=("R1",))
    half = stats.t.ppf(0.975, 2) * 5.0 / np.sqrt(3)  # baseline: mean 55, std 5
    assert f"| baseline | 0,1,2 | 55.0 ± 5.0 [{55 - half:.1f}, {55 + half:.1f}] | 10 |" in text
    diff = np.array([2.0, 1.0, 0.0])
    d_half = stats.t.ppf(0.975, 2) * diff.std(ddof=1) / np.sqrt(3)
    p = stats.ttest_rel([52.0, 61.0, 55.0], [50.0, 60.0, 55.0]).pvalue
    assert f"| full | 3 | +1.0 [{1 - d_half:+.1f}, {1 + d_half:+.1f}] p={p:.2f} *noise* |" in text


def test_gap_change_is_the_seed_paired_difference_of_differences(tmp_path: Path) -> None:
    def run(preset: str, level: float | None, seed: int, r1: float) -> compare.Run:
        params: dict[str, object] = {"loss_preset": preset, "seed": seed, "with_baseline": level is None}
        if level is not None:
            params["evidence"] = level
        return compare.Run(tmp_path, params, seed, {"R1": r1}, [])

    runs = [run("baseline", None, 0, 50.0), run("baseline", None, 1, 52.0), run("full", None, 0, 45.0)]
    runs += [run("full", None, 1, 48.0), run("+ip", None, 0, 51.0)]  # +ip: at one level only, no row
    runs += [run("baseline", 1.0, 0, 30.0), run("baseline", 1.0, 1, 33.0), run("full", 1.0, 0, 29.0)]
    runs += [run("full", 1.0, 1, 30.0), run("full", 1.0, 2, 99.0)]  # seed 2 has no baseline: not paired
    # gaps at the reference (missing) level: -5, -4; at 1.0: -1, -3; changes: +4, +1
    base, reference, rows = compare.gap_change(runs, "evidence", metrics=("R1",))
    assert (base, reference) == ("baseline", None) and [r["config"] for r in rows] == ["full"]
    (row,) = rows
    assert (row["level"], row["seeds"], row["pairs"]) == (1.0, [0, 1], 2)
    assert row["gaps"] == [-1.0, -3.0] and row["reference_gaps"] == [-5.0, -4.0] and row["changes"] == [4.0, 1.0]
    half = stats.t.ppf(0.975, 1) * np.std([4.0, 1.0], ddof=1) / np.sqrt(2)
    assert row["mean_change"] == pytest.approx(2.5) and row["ci95"] == pytest.approx(half)
    assert row["t_p"] == pytest.approx(stats.ttest_1samp([4.0, 1.0], 0.0).pvalue) and row["inside_noise"] is True
    text = compare.gap_change_table(runs, "evidence", metrics=("R1",))
    assert f"| full at 1.0 | 2 | +2.5 [{2.5 - half:+.1f}, {2.5 + half:+.1f}]" in text
    assert "(seed 0: +4.0, 1: +1.0) |" in text
    with pytest.raises(ValueError, match="'loss_preset' takes 1 value"):
        compare.gap_change(runs[:2], "loss_preset")
    for run in runs:  # a second parameter that changes with the first: one level of both values
        run.params["epochs"] = 20 if "evidence" not in run.params else 57
    _, reference, (both,) = compare.gap_change(runs, "evidence,epochs", metrics=("R1",))
    assert reference == "evidence=None, epochs=20" and both["level"] == "evidence=1.0, epochs=57"
    assert both["changes"] == [4.0, 1.0]
    assert "change from evidence=None, epochs=20 |" in compare.gap_change_table(
        runs, "evidence,epochs", metrics=("R1",)
    )
    with pytest.raises(ValueError, match="baseline configuration 'nope'"):
        compare.gap_change(runs, "evidence", "nope")


def test_compare_command_fills_the_default_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--by NAME --by-default VALUE``: runs that did not set NAME (the notebook default) are that level."""
    for name, params, r1 in (
        ("b0", {"loss_preset": "baseline", "seed": 0}, 50.0),
        ("f0", {"loss_preset": "full", "seed": 0}, 45.0),
        ("b1", {"loss_preset": "baseline", "seed": 0, "synthetic_modality_evidence": 1.0}, 30.0),
        ("f1", {"loss_preset": "full", "seed": 0, "synthetic_modality_evidence": 1.0}, 29.0),
    ):
        folder = tmp_path / name
        folder.mkdir()
        metrics = {"03_evaluate": {"protocols": {PROTOCOL: {"R1": r1, "mAP": r1, "mINP": r1}}}}
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "params.json").write_text(json.dumps({"02_train": params}))
    folders = [str(tmp_path / n) for n in ("b0", "f0", "b1", "f1")]
    assert compare.main([*folders, "--by", "synthetic_modality_evidence", "--by-default", "0"]) == 0
    out = capsys.readouterr().out
    assert "| baseline · synthetic_modality_evidence=0 | 0 |" in out
    assert "| full at 1.0 | 1 | +4.0 (seed 0: +4.0) |" in out
    assert compare.main([*folders[:2], "--by", "synthetic_modality_evidence"]) == 2
    assert "--by synthetic_modality_evidence: 'synthetic_modality_evidence' takes 1 value" in capsys.readouterr().err
