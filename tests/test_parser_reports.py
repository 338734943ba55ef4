"""Inputs that look wrong are reported: what a parser leaves out is named in one warning and in meta["skipped"];
split files are read in full."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from PIL import Image

from idkl_lib.data import VIDataset, parse_llcm, parse_regdb, parse_sysu
from idkl_lib.data._common import DatasetWarning

_AS_REAL = shutil.ignore_patterns(".synthetic.json")


def _copy(root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(root, tmp_path / root.name, ignore=_AS_REAL))


def test_clean_datasets_report_nothing(sysu_root: Path, regdb_root: Path, llcm_root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)
        for ds in (parse_sysu(sysu_root), parse_regdb(regdb_root, trial=3), parse_llcm(llcm_root)):
            assert ds.meta["skipped"] == {}


def test_sysu_stray_png_and_absent_test_identity_are_named(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path
) -> None:
    root = _copy(sysu_root, tmp_path)
    first = Path(sysu_dataset.train[0].path)
    stray = root / first.parent.parent.name / first.parent.name / "0099.png"
    Image.new("RGB", (16, 32)).save(stray)
    gone = sorted({s.pid for s in sysu_dataset.query})[0]
    for cam in range(1, 7):
        shutil.rmtree(root / f"cam{cam}" / f"{gone:04d}")
    with pytest.warns(DatasetWarning) as record:
        ds = parse_sysu(root)
    assert len(record) == 1  # one warning for everything
    message = str(record[0].message)
    assert f"{stray.relative_to(root).as_posix()}" in message and f"with no images ({gone})" in message
    assert ds.meta["skipped"]["entries of identity folders that are not .jpg images"]["items"] == [
        stray.relative_to(root).as_posix()
    ]
    assert ds.meta["skipped"]["test identities of exp/test_id.txt with no images"] == {"count": 1, "items": [str(gone)]}
    assert len(ds.train) == len(sysu_dataset.train)
    assert {s.pid for s in ds.gallery} == {s.pid for s in sysu_dataset.gallery} - {gone}


def test_sysu_split_file_with_one_id_per_line_is_read_in_full(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path
) -> None:
    root = _copy(sysu_root, tmp_path)
    for name in ("train", "val", "test"):
        path = root / "exp" / f"{name}_id.txt"
        ids = path.read_text().strip().split(",")
        path.write_text("\n".join(ids) + "\n")
    ds = parse_sysu(root)
    assert ds.num_train_ids == sysu_dataset.num_train_ids == 12
    assert ds.meta["train_id_map"] == sysu_dataset.meta["train_id_map"]
    assert len(ds.query) == len(sysu_dataset.query)

    path = root / "exp" / "train_id.txt"
    path.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=r"train_id\.txt lists ids \[\d+\] more than once"):
        parse_sysu(root)
    path.write_text("1,2\n3;4\n")
    with pytest.raises(ValueError, match=r"train_id\.txt:2: expected integer ids separated by commas or line breaks"):
        parse_sysu(root)


def test_regdb_and_llcm_name_files_no_index_lists(regdb_root: Path, llcm_root: Path, tmp_path: Path) -> None:
    regdb = _copy(regdb_root, tmp_path)
    some = next(p for p in sorted((regdb / "Thermal").iterdir()))
    Image.new("L", (16, 32)).save(some / "extra.png")
    with pytest.warns(DatasetWarning, match=rf"1 files not listed in idx/.*_2\.txt \(Thermal/{some.name}/extra\.png\)"):
        ds = parse_regdb(regdb, trial=2)
    assert ds.meta["skipped"] == {
        "files not listed in idx/{train,test}_{visible,thermal}_2.txt": {
            "count": 1,
            "items": [f"Thermal/{some.name}/extra.png"],
        }
    }
    llcm = _copy(llcm_root, tmp_path)
    some = next(p for p in sorted((llcm / "vis").iterdir()))
    Image.new("RGB", (16, 32)).save(some / "copy.png")
    (llcm / "nir" / "backup").mkdir()
    with pytest.warns(DatasetWarning, match=r"2 item\(s\) left out"):
        ds = parse_llcm(llcm)
    assert ds.meta["skipped"]["files not listed in idx/{train,test}_{vis,nir}.txt"]["items"] == [
        f"vis/{some.name}/copy.png"
    ]
    assert ds.meta["skipped"]["entries that are not integer identity folders"]["items"] == ["nir/backup"]
