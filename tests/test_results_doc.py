"""docs/results.md's generated tables equal what their committed data gives, and the machinery that checks it
(export from a sweep folder, print, check, rewrite) works on a small fake sweep."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from idkl_lib.experiments import compare, results_doc

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL = "all-search single-shot"
HAND_NOTE = re.compile(r"<!-- (transcribed|by hand)\b")


def _fake_sweep(root: Path, presets: dict[str, list[float]], extra: dict | None = None) -> Path:
    """A sweep folder with one finished cell per (preset, seed): R1 from ``presets``, mAP/mINP derived."""
    order, cells = [], {}
    for preset, r1s in presets.items():
        for seed, r1 in enumerate(r1s):
            name = f"loss_preset-{preset}__seed-{seed}"
            cell = root / name
            cell.mkdir(parents=True)
            params = {"loss_preset": preset, "seed": seed, "lr": 0.01, "run_dir": str(cell), **(extra or {})}
            (cell / "params.json").write_text(json.dumps({"02_train": params}))
            metrics = {"R1": r1, "mAP": r1 - 5.0 + seed, "mINP": r1 - 20.0 + 0.5 * seed}
            evaluation = {"protocols": {PROTOCOL: metrics}, "cmc": {PROTOCOL: [r1 / 100.0, 0.9]}}
            (cell / "metrics.json").write_text(json.dumps({"03_evaluate": evaluation}))
            (cell / "status.json").write_text(json.dumps({"steps": {"02_train": {"duration_s": 100.0 + seed}}}))
            order.append(name)
            cells[name] = {"state": "done", "params": {"loss_preset": preset, "seed": seed}}
    (root / "sweep.json").write_text(json.dumps({"order": order, "cells": cells}))
    return root


@pytest.fixture
def committed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A fake sweep, its export under results/, a tables.yaml and a page with one marked table."""
    sweep = _fake_sweep(tmp_path / "reports" / "abl", {"baseline": [60.0, 62.0, 61.0], "full": [64.0, 63.5, 66.0]})
    results = tmp_path / "results"
    results_doc.export_sweep(sweep, results / "abl")
    (results / "tables.yaml").write_text("abl:\n  sweeps: [abl]\n")
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\nText.\n\n<!-- table: abl -->\nstale\n<!-- /table -->\n\nMore text.\n")
    return sweep, results, doc


def test_export_keeps_no_checkpoint_and_the_tables_are_compares(committed: tuple[Path, Path, Path]) -> None:
    sweep, results, _ = committed
    data = json.loads((results / "abl" / "results.json").read_text())
    assert (
        data["protocol"] == PROTOCOL
        and len(data["runs"]) == 6
        and sorted(p.name for p in results.iterdir())
        == [
            "abl",
            "tables.yaml",
        ]
    )
    runs, _ = compare.load_runs(sweep)
    assert results_doc.render_tables(results) == {"abl": compare.markdown_tables(runs)}


def test_write_then_check_and_a_changed_number_fails(committed: tuple[Path, Path, Path]) -> None:
    _, results, doc = committed
    assert any("differs from its data" in p for p in results_doc.check_doc(doc, results))
    assert results_doc.main(["--results-dir", str(results), "--doc", str(doc), "--write"]) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\nText.\n\n<!-- table: abl -->\n| configuration |") and "More text." in text
    assert results_doc.check_doc(doc, results) == []
    assert results_doc.main(["--results-dir", str(results), "--doc", str(doc), "--check"]) == 0
    path = results / "abl" / "results.json"
    data = json.loads(path.read_text())
    data["runs"][0]["metrics"]["R1"] += 3.0  # the data changed, the page did not
    path.write_text(json.dumps(data))
    problems = results_doc.check_doc(doc, results)
    assert len(problems) == 1 and "table 'abl' differs from its data" in problems[0] and "\n-| baseline" in problems[0]
    assert results_doc.main(["--results-dir", str(results), "--doc", str(doc), "--check"]) == 1


def test_unknown_and_unused_markers_and_bad_specs(committed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, results, doc = committed
    doc.write_text("<!-- table: other -->\nx\n<!-- /table -->\n")
    problems = results_doc.check_doc(doc, results)
    assert any("'other' is marked but tables.yaml does not define it" in p for p in problems)
    assert any("'abl' of tables.yaml is not marked" in p for p in problems)
    (results / "tables.yaml").write_text("abl:\n  sweeps: [abl]\n  show: [gap]\n")
    with pytest.raises(ValueError, match="shows 'gap' but names no 'by'"):
        results_doc.load_tables(results)
    (results / "tables.yaml").write_text("abl:\n  sweeps: [gone]\n")
    with pytest.raises(FileNotFoundError, match="--export SWEEP_DIR --name gone"):
        results_doc.render_tables(results)


def test_gap_part_pools_two_sweeps_like_compare_by(tmp_path: Path) -> None:
    fast = _fake_sweep(tmp_path / "fast", {"baseline": [60.0, 62.0, 61.0], "full": [55.0, 54.0, 58.0]})
    slow = _fake_sweep(
        tmp_path / "slow", {"baseline": [40.0, 41.0, 39.0], "full": [47.0, 50.0, 46.5]}, extra={"lr": 0.0035}
    )
    results = tmp_path / "results"
    for sweep in (fast, slow):
        results_doc.export_sweep(sweep, results / sweep.name)
    spec = {"sweeps": ["fast", "slow"], "show": ["gap"], "by": "lr"}
    runs = compare.load_runs(fast)[0] + compare.load_runs(slow)[0]
    assert results_doc.render_table(spec, results) == compare.gap_change_table(runs, "lr")
    only_full = results_doc.render_table({"sweeps": ["slow"], "show": ["summary"], "configs": ["full"]}, results)
    assert "| full |" in only_full and "| baseline |" not in only_full


def test_results_md_tables_equal_their_data_and_the_others_say_where_they_come_from() -> None:
    doc, results = ROOT / "docs" / "results.md", ROOT / "docs" / "results"
    assert results_doc.check_doc(doc, results) == []
    text = doc.read_text(encoding="utf-8")
    outside = results_doc._MARKER.sub("", text).splitlines()  # the tables that are not generated
    for i, line in enumerate(outside):
        if line.startswith("|") and not outside[i - 1].startswith("|"):
            above = next(prev for prev in reversed(outside[:i]) if prev.strip())
            assert HAND_NOTE.match(above), (
                f"docs/results.md: the table starting {line[:60]!r} is neither generated (<!-- table: NAME -->) nor "
                "says where it comes from (<!-- transcribed ... --> or <!-- by hand ... --> on the line above)"
            )
