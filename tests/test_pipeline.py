"""Tests for idkl_lib.pipeline.run and idkl_lib.report.index on tiny notebooks written with nbformat into tmp_path."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from idkl_lib.pipeline import DEFAULT_STEPS, PRESETS, PipelineError, Step, parse_param_value, run_pipeline
from idkl_lib.pipeline.cli import main
from idkl_lib.report import index as reports

# A 1x1 PNG, so the notebooks can write a figure without importing matplotlib.
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

BODY = f"""
import base64, json, pathlib
step = pathlib.Path(step_dir)
(step / "figures").mkdir(parents=True, exist_ok=True)
with open(pathlib.Path(run_dir) / "order.txt", "a") as fh:
    fh.write(step.name + "\\n")
(step / "figures" / "dot.png").write_bytes(base64.b64decode("{PNG_B64}"))
(step / "figures" / "interactive.html").write_text("<p>plot</p>")
received = {{name: globals()[name] for name in PARAM_NAMES}}
if write_metrics:
    (step / "metrics.json").write_text(json.dumps({{"received": received, "score": 0.875}}))
"""


def write_notebook(path: Path, params: dict[str, object], body: str = BODY) -> Path:
    """A notebook with a title, a ``parameters`` cell holding ``params`` and ``body``."""
    source = "\n".join(f"{name} = {value!r}" for name, value in params.items())
    cells = [
        new_markdown_cell(f"# {path.stem}"),
        new_code_cell(source, metadata={"tags": ["parameters"]}),
        new_code_cell(f"PARAM_NAMES = {sorted(params)!r}"),
        new_code_cell(body),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def standard_params(**extra: object) -> dict[str, object]:
    return {"run_dir": "unset", "step_dir": "unset", "epochs": 1, "seed": 7, "write_metrics": True, **extra}


FAIL_BODY = "x = 1\nraise ValueError('boom in cell')\n"


# ---------------------------------------------------------------------------------------------- unit tests


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-3", 1e-3),
        ("True", True),
        ("false", False),
        ("None", None),
        ("null", None),
        ("[1, 2]", [1, 2]),
        ("{a: 1}", {"a": 1}),
        ("sysu", "sysu"),
        ("nan", "nan"),
        ("1.2.3", "1.2.3"),
    ],
)
def test_parse_param_value(text: str, expected: object) -> None:
    value = parse_param_value(text)
    assert value == expected and type(value) is type(expected)


def test_default_steps_and_presets() -> None:
    assert [s.name for s in DEFAULT_STEPS] == [
        "01_data_exploration",
        "02_train",
        "02_train_baseline",
        "03_evaluate",
        "04_gradcam",
        "05_embeddings",
    ]
    baseline = DEFAULT_STEPS[2]
    assert baseline.notebook == "02_train"
    assert dict(baseline.params) == {"loss_preset": "baseline", "run_tag": "baseline"}
    assert {"demo", "ci", "full"} <= set(PRESETS)
    assert PRESETS["ci"]["dataset"] == "synthetic"
    with pytest.raises(ValueError, match="step name"):
        Step("01_x", "bad name")


def test_configuration_errors_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01_a.ipynb", standard_params())
    write_notebook(nb_dir / "02_b.ipynb", standard_params(tag="b"))
    write_notebook(nb_dir / "03_noparams.ipynb", {"epochs": 1})
    steps = [Step("01_a"), Step("02_b")]
    run_dir = tmp_path / "run"
    common = {"steps": steps, "notebooks_dir": nb_dir, "preset": None, "verbose": False}

    with pytest.raises(ValueError, match=r"no notebook declares a parameter 'epochz'.*known names: \['epochs', 'seed'"):
        run_pipeline(run_dir, params={"epochz": 3}, **common)
    with pytest.raises(ValueError, match=r"02_b\.ipynb declares no parameter 'tagg'"):
        run_pipeline(run_dir, params={"02_b.tagg": "x"}, **common)
    with pytest.raises(ValueError, match=r"no step named 'nope'"):
        run_pipeline(run_dir, params={"nope.epochs": 1}, **common)
    with pytest.raises(ValueError, match="set by the pipeline"):
        run_pipeline(run_dir, params={"run_dir": "/elsewhere"}, **common)
    with pytest.raises(ValueError, match=r"preset 'huge' is not defined; presets: \['ci', 'demo', 'full'"):
        run_pipeline(run_dir, **{**common, "preset": "huge"})
    with pytest.raises(ValueError, match=r"step '01_a' sets \['loss_preset'\] but .*01_a\.ipynb does not declare"):
        run_pipeline(run_dir, **{**common, "steps": [Step("01_a", params={"loss_preset": "baseline"})]})
    with pytest.raises(ValueError, match="declares neither run_dir nor step_dir"):
        run_pipeline(run_dir, **{**common, "steps": [Step("03_noparams")]})
    with pytest.raises(FileNotFoundError, match=r"99_missing\.ipynb for step '99_missing' does not exist"):
        run_pipeline(run_dir, **{**common, "steps": [*steps, Step("99_missing")]})
    with pytest.raises(ValueError, match=r"only=\['03_eval'\]: no such step"):
        run_pipeline(run_dir, only=["03_eval"], **common)
    with pytest.raises(ValueError, match=r"kernel 'no-such-kernel' is not installed"):
        run_pipeline(run_dir, kernel_name="no-such-kernel", **common)
    with pytest.raises(ValueError, match="must be unique"):
        run_pipeline(run_dir, **{**common, "steps": [Step("01_a"), Step("01_a")]})
    assert not run_dir.exists(), "a configuration error must not create the run folder"

    # The CLI turns the same errors into exit status 2 with the message on stderr.
    write_notebook(nb_dir / "01_data_exploration.ipynb", standard_params())
    argv = ["--run-dir", str(run_dir), "--notebooks-dir", str(nb_dir), "--only", "01_data_exploration"]
    code = main([*argv, "-p", "epochz", "3"])
    assert code == 2
    assert "no notebook declares a parameter 'epochz'" in capsys.readouterr().err


def test_render_index_shows_failure_and_metrics(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "a" / "figures").mkdir(parents=True)
    (run / "a" / "metrics.json").write_text(json.dumps({"rank": {"r1": 0.8125, "cmc": [0.5, 0.75]}, "n": 1200}))
    (run / "a" / "figures" / "plot.png").write_bytes(b"png")
    (run / "a.html").write_text("x")
    status = {
        "state": "failed",
        "order": ["a", "b"],
        "steps": {"a": {"state": "done", "duration_s": 2.5}, "b": {"state": "failed"}},
        "failure": {"step": "b", "exec_count": 4, "cell_index": 5, "ename": "KeyError", "evalue": "'x' <missing>"},
    }
    (run / "status.json").write_text(json.dumps(status))
    page = reports.write_index(run).read_text()
    assert "Step b failed" in page and "In [4]" in page and "KeyError" in page
    assert "&#x27;x&#x27; &lt;missing&gt;" in page, "values must be HTML-escaped"
    assert '<img src="a/figures/plot.png"' in page and 'href="a.html"' in page
    assert "rank.r1" in page and "0.8125" in page and "[0.5, 0.75]" in page and "1,200" in page
    assert "<script" not in page
    assert reports.flatten_metrics({"x": {"y": 1}, "z": 2}) == [("x.y", 1), ("z", 2)]


# ---------------------------------------------------------------------------------------------- notebook runs


@pytest.mark.notebooks
def test_run_order_parameters_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01_explore.ipynb", standard_params())  # declares no `tag`: it must not receive it
    write_notebook(nb_dir / "02_train.ipynb", standard_params(tag="full"))
    steps = [
        Step("01_explore"),
        Step("02_train"),
        Step("02_train", "02_train_baseline", {"tag": "baseline"}),
        Step("99_not_written_yet"),  # missing notebook: fine while --only leaves it out
    ]
    run_dir = tmp_path / "reports" / "demo"
    with pytest.warns(UserWarning, match="preset 'ci' sets parameters no notebook declares"):
        result = run_pipeline(
            run_dir,
            preset="ci",
            params={"epochs": 5, "02_train_baseline.epochs": 2},
            steps=steps,
            notebooks_dir=nb_dir,
            only=["01_explore", "02_train", "02_train_baseline"],
        )
    out = capsys.readouterr().out
    assert "[1/3] 01_explore ... done in" in out and "[3/3] 02_train_baseline ... done in" in out
    assert f"Report: {run_dir.resolve() / 'index.html'}" in out

    assert (run_dir / "order.txt").read_text().split() == ["01_explore", "02_train", "02_train_baseline"]
    received = {name: json.loads((run_dir / name / "metrics.json").read_text())["received"] for name in result.metrics}
    seed = PRESETS["ci"]["seed"]
    assert received["01_explore"]["epochs"] == 5 and received["01_explore"]["seed"] == seed
    assert "tag" not in received["01_explore"]
    assert received["02_train"] | {"step_dir": None} == {
        "run_dir": str(run_dir.resolve()),
        "step_dir": None,
        "epochs": 5,
        "seed": seed,
        "write_metrics": True,
        "tag": "full",
    }
    assert received["02_train"]["step_dir"] == str(run_dir.resolve() / "02_train")
    assert received["02_train_baseline"]["epochs"] == 2 and received["02_train_baseline"]["tag"] == "baseline"

    for name in ("01_explore", "02_train", "02_train_baseline"):
        assert (run_dir / f"{name}.ipynb").is_file() and (run_dir / f"{name}.html").is_file()
        # notebooks without slide metadata still convert: one slide holding every visible cell
        deck = (run_dir / f"{name}.slides.html").read_text(encoding="utf-8")
        assert deck.count("<section") == 2 and "reveal.js" in deck and name.removesuffix("_baseline") in deck
        assert "PARAM_NAMES" not in deck  # code is hidden
    assert "baseline" in (run_dir / "02_train_baseline.html").read_text()
    params = json.loads((run_dir / "params.json").read_text())
    assert params["02_train_baseline"]["tag"] == "baseline" and "tag" not in params["01_explore"]
    run_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(run_metrics) == {"01_explore", "02_train", "02_train_baseline"}
    assert run_metrics["02_train"]["score"] == 0.875
    env = json.loads((run_dir / "environment.json").read_text())
    for key in ("idkl_lib_version", "git_commit", "git_dirty", "python", "torch", "torchvision", "device", "hostname"):
        assert key in env
    assert env["started"] <= env["finished"] and env["device"] == "cpu"
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "done" and status["steps"]["02_train"]["state"] == "done"

    page = result.index_html.read_text()
    assert result.index_html == run_dir.resolve() / "index.html"
    assert 'href="02_train_baseline.html"' in page and 'href="02_train_baseline.slides.html"' in page
    names = ["01_explore", "02_train", "02_train_baseline"]
    assert [s.slides for s in result.steps] == [run_dir.resolve() / f"{name}.slides.html" for name in names]
    assert '<img src="02_train/figures/dot.png"' in page
    assert 'href="02_train/figures/interactive.html"' in page
    assert "received.epochs" in page and "0.875" in page
    assert [s.state for s in result.steps] == ["done", "done", "done"]


@pytest.mark.notebooks
def test_failure_names_notebook_cell_and_error(tmp_path: Path) -> None:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01_ok.ipynb", standard_params())
    write_notebook(nb_dir / "02_fail.ipynb", standard_params(), body=FAIL_BODY)
    write_notebook(nb_dir / "03_after.ipynb", standard_params())
    run_dir = tmp_path / "run"
    steps = [Step("01_ok"), Step("02_fail"), Step("03_after")]
    with pytest.raises(PipelineError) as info:
        run_pipeline(run_dir, preset=None, steps=steps, notebooks_dir=nb_dir, verbose=False)
    err = info.value
    assert err.step == "02_fail" and err.notebook == nb_dir.resolve() / "02_fail.ipynb"
    assert (err.ename, err.evalue) == ("ValueError", "boom in cell")
    assert err.exec_count is not None and err.cell_index is not None
    message = str(err)
    assert "02_fail.ipynb" in message and f"In [{err.exec_count}]" in message and "ValueError: boom in cell" in message

    partial = nbformat.read(str(run_dir / "02_fail.ipynb"), as_version=4)
    failed_cell = partial.cells[err.cell_index]
    assert "boom in cell" in failed_cell.source
    assert any(o.get("ename") == "ValueError" for o in failed_cell.outputs)
    assert err.html == run_dir.resolve() / "02_fail.html" and err.html.is_file()
    assert not (run_dir / "03_after.ipynb").exists() and not (run_dir / "order.txt").read_text().count("03_after")

    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["steps"]["02_fail"]["state"] == "failed"
    assert status["failure"]["ename"] == "ValueError" and status["failure"]["exec_count"] == err.exec_count
    assert set(json.loads((run_dir / "metrics.json").read_text())) == {"01_ok"}
    assert "Step 02_fail failed" in (run_dir / "index.html").read_text()


@pytest.mark.notebooks
def test_cli_exit_status_on_failure(tmp_path: Path) -> None:
    nb_dir = tmp_path / "notebooks"
    write_notebook(nb_dir / "01_data_exploration.ipynb", standard_params())
    # the kernel's own log (here a line the cell logs through it) goes to the step's kernel log, not to our stderr
    kernel_logs = "from ipykernel.kernelapp import IPKernelApp\nIPKernelApp.instance().log.error('kernel-side line')\n"
    params = standard_params(loss_preset="idkl", run_tag="")
    write_notebook(nb_dir / "02_train.ipynb", params, body=kernel_logs + FAIL_BODY)
    run_dir = tmp_path / "reports" / "cli"
    command = [sys.executable, "-m", "idkl_lib.pipeline", "--run-dir", str(run_dir), "--notebooks-dir", str(nb_dir)]
    command += ["--preset", "ci", "--only", "01_data_exploration", "02_train", "-p", "epochs", "4"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 1, done.stderr
    # quiet: one line per step, then where the report is; no kernel log lines on stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\[1/2\] 01_data_exploration \.\.\. done in \d+\.\d s", lines[0]), lines
    assert re.fullmatch(r"\[2/2\] 02_train \.\.\. FAILED after \d+\.\d s", lines[1]), lines
    assert len(lines) == 3 and lines[2].startswith("Report (partial): "), lines
    assert "without encryption" not in done.stderr and "IPKernelApp" not in done.stderr, done.stderr
    assert "02_train.ipynb" in done.stderr and "In [" in done.stderr and "ValueError: boom in cell" in done.stderr
    kernel_log = run_dir / "02_train.kernel.log"
    assert f"kernel log: {kernel_log}" in done.stderr and "kernel-side line" in kernel_log.read_text()
    metrics = json.loads((run_dir / "01_data_exploration" / "metrics.json").read_text())
    assert metrics["received"]["epochs"] == 4 and isinstance(metrics["received"]["epochs"], int)
    assert (run_dir / "02_train.ipynb").is_file() and (run_dir / "index.html").is_file()


@pytest.mark.notebooks
def test_resume_skips_finished_and_reruns_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01_a.ipynb", standard_params())
    write_notebook(nb_dir / "02_b.ipynb", standard_params())
    run_dir = tmp_path / "run"
    kwargs = {"preset": None, "steps": [Step("01_a"), Step("02_b")], "notebooks_dir": nb_dir}

    def runs() -> list[str]:
        return (run_dir / "order.txt").read_text().split()

    run_pipeline(run_dir, **kwargs)
    assert runs() == ["01_a", "02_b"]

    result = run_pipeline(run_dir, resume=True, **kwargs)
    assert [s.state for s in result.steps] == ["skipped", "skipped"] and runs() == ["01_a", "02_b"]
    assert "[1/2] 01_a ... skipped" in capsys.readouterr().out
    assert set(result.metrics) == {"01_a", "02_b"}

    result = run_pipeline(run_dir, resume=True, params={"02_b.epochs": 3}, **kwargs)
    assert [s.state for s in result.steps] == ["skipped", "done"]
    assert runs() == ["01_a", "02_b", "02_b"]
    assert json.loads((run_dir / "02_b" / "metrics.json").read_text())["received"]["epochs"] == 3

    # A changed first step re-runs, and so does every step after it; the stale metrics.json does not count.
    with pytest.raises(PipelineError, match="without writing .*metrics.json") as info:
        run_pipeline(run_dir, resume=True, params={"01_a.write_metrics": False, "02_b.epochs": 3}, **kwargs)
    assert info.value.step == "01_a" and info.value.ename == "MissingMetrics"
    assert runs() == ["01_a", "02_b", "02_b", "01_a"]
    result = run_pipeline(run_dir, resume=True, params={"02_b.epochs": 3}, **kwargs)
    assert [s.state for s in result.steps] == ["done", "done"]
    assert "Reusing existing run folder" in capsys.readouterr().out
