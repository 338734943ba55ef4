"""Writing synthetic datasets safely: concurrent writers, the completion marker and its counts, interrupted writers,
and the refusal to write inside a real dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from idkl_lib.data import parse_llcm, parse_regdb, parse_sysu, write_synthetic
from idkl_lib.data import synthetic as syn
from idkl_lib.data.layout import detect_layout
from idkl_lib.data.marker import MARKER, count_files
from idkl_lib.utils.lock import lock_path
from idkl_lib.workbench import prepare_dataset

SMALL = {"num_train_ids": 4, "num_test_ids": 2, "images_per_camera": 2, "height": 32, "width": 16}

_WRITE = """
import sys
from idkl_lib.data import write_synthetic
print(write_synthetic(sys.argv[1], layout="sysu", num_train_ids=8, num_test_ids=4, images_per_camera=3, height=32,
                      width=16))
"""


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_processes_writing_one_dataset_end_with_one_complete_copy(tmp_path: Path) -> None:
    root = tmp_path / "data" / "ds"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITE, str(root)], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs == [str(root), str(root)]
    reference = write_synthetic(
        tmp_path / "one", layout="sysu", num_train_ids=8, num_test_ids=4, images_per_camera=3, height=32, width=16
    )
    assert _files(root) == _files(reference)  # byte for byte what one process writes alone
    assert sorted(p.name for p in root.parent.iterdir()) == ["ds"]  # no temporary folder, no lock left behind
    ds = parse_sysu(root)
    assert len(ds.train) + len(ds.query) + len(ds.gallery) == 12 * 6 * 3


def test_marker_is_written_last_with_counts_and_parsers_check_them(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "ds", layout="regdb", **SMALL)
    marker = json.loads((root / MARKER).read_text())
    assert marker["complete"] is True
    assert marker["counts"] == count_files(root) and marker["counts"]["Visible"] == 6 * 2
    assert marker["images"] == 6 * 2 * 2
    (root / "Visible" / ".ipynb_checkpoints").mkdir()  # hidden entries are not data: no mismatch
    (root / "Visible" / ".ipynb_checkpoints" / "x.bmp").write_bytes(b"")
    assert parse_regdb(root).meta["skipped"] == {}
    victim = next((root / "Thermal").rglob("*.bmp"))
    victim.unlink()
    with pytest.raises(
        ValueError, match=r"does not match its \.synthetic\.json \(Thermal: 11 files, the marker records 12\)"
    ):
        parse_regdb(root)
    with pytest.warns(UserWarning, match="Thermal: 11 files, the marker records 12.*rebuilding"):
        write_synthetic(root, layout="regdb", **SMALL)
    assert victim.is_file() and len(parse_regdb(root).query) > 0

    (root / MARKER).write_text(json.dumps({**marker, "complete": False}))
    with pytest.raises(ValueError, match=r"incomplete synthetic dataset .*write_synthetic"):
        parse_regdb(root)


def test_interrupted_writer_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_then_crash(root: Path, *args: object) -> None:
        (root / "cam1" / "0001").mkdir(parents=True)
        (root / "cam1" / "0001" / "0001.jpg").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setitem(syn._LAYOUT_WRITERS, "sysu", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        write_synthetic(tmp_path / "ds", **SMALL)
    assert list(tmp_path.iterdir()) == []  # no partial dataset, temporary folder or lock
    monkeypatch.undo()
    (tmp_path / ".ds.tmp-999999-deadbeef" / "cam1").mkdir(parents=True)  # a writer killed before its clean-up
    root = write_synthetic(tmp_path / "ds", **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"] and not lock_path(root).exists()
    assert parse_sysu(root).num_train_ids == 4


def _fake_release(root: Path, layout: str) -> Path:
    folders = {"sysu": ["cam1", "cam2", "cam3", "exp"], "regdb": ["Visible", "Thermal"], "llcm": ["vis", "nir", "idx"]}
    for name in folders[layout]:
        (root / name).mkdir(parents=True)
    return root


@pytest.mark.parametrize(("layout", "name"), [("sysu", "SYSU-MM01"), ("regdb", "RegDB"), ("llcm", "LLCM")])
def test_never_writes_inside_a_real_dataset(tmp_path: Path, layout: str, name: str) -> None:
    real = _fake_release(tmp_path / "release", layout)
    assert detect_layout(real) == layout
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(
        ValueError, match=rf"inside {real}, which is a real dataset: it looks like {name}.*dataset='{layout}'"
    ):
        prepare_dataset("synthetic", real, synthetic_layout="sysu", synthetic_ids=4, synthetic_images=2)
    with pytest.raises(ValueError, match=rf"{real} is a real dataset: it looks like {name}"):
        write_synthetic(real, **SMALL)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_detect_layout_of_synthetic_and_plain_folders(tmp_path: Path) -> None:
    for layout in ("sysu", "regdb", "llcm"):
        assert detect_layout(write_synthetic(tmp_path / layout, layout=layout, **SMALL)) == layout
    assert parse_llcm(tmp_path / "llcm").name == "llcm"
    (tmp_path / "empty").mkdir()
    assert detect_layout(tmp_path / "empty") is None and detect_layout(tmp_path / "missing") is None
    # a synthetic dataset is not a real one: writing another synthetic dataset below it is allowed
    inner = write_synthetic(tmp_path / "sysu" / "nested", **SMALL)
    assert detect_layout(inner) == "sysu"
