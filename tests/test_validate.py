"""Checks before the long part: damaged images, SYSU-MM01's trial table, out-dir writability and free space."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from idkl_lib.data import VIDataset, parse_regdb, parse_sysu, read_rand_perm_cam, write_rand_perm_cam
from idkl_lib.data._common import DatasetWarning
from idkl_lib.data.validate import DatasetCheckError, check_dataset, check_image, check_writable

_AS_REAL = shutil.ignore_patterns(".synthetic.json")


@pytest.fixture
def sysu_copy(sysu_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sysu_root, tmp_path / "sysu", ignore=_AS_REAL))


def _truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:-20])  # the scan data is cut short; the header still reads


def test_clean_dataset_passes(sysu_dataset: VIDataset, regdb_root: Path) -> None:
    report = check_dataset(sysu_dataset, num_trials=10)
    assert report.damaged == () and report.dataset is sysu_dataset
    assert report.images_checked == len(sysu_dataset.train) + len(sysu_dataset.query) + len(sysu_dataset.gallery)
    regdb = parse_regdb(regdb_root)
    assert check_dataset(regdb, full=True).images_checked == len(regdb.train) + len(regdb.query) + len(regdb.gallery)


def test_truncated_bmp_is_found(regdb_root: Path, tmp_path: Path) -> None:
    ds = parse_regdb(Path(shutil.copytree(regdb_root, tmp_path / "regdb", ignore=_AS_REAL)))
    victim = ds.gallery[3].path
    _truncate(victim)
    with pytest.raises(DatasetCheckError, match=rf"1 of \d+ images are damaged: {victim} \(OSError: "):
        check_dataset(ds)


def test_damaged_images_are_named_or_skipped_and_listed(sysu_copy: Path) -> None:
    ds = parse_sysu(sysu_copy)
    truncated, garbage, gallery = ds.train[5].path, ds.query[2].path, ds.gallery[7].path
    _truncate(truncated)  # an interrupted copy: the header is intact
    Path(garbage).write_bytes(os.urandom(500))
    assert check_image(truncated) == "truncated JPEG (no end-of-image marker)"
    assert check_image(garbage, full=True).startswith("UnidentifiedImageError")  # type: ignore[union-attr]
    with pytest.raises(DatasetCheckError, match=r"2 of \d+ images are damaged: .*skip_corrupt=True") as info:
        check_dataset(ds)
    assert truncated in str(info.value) and garbage in str(info.value)

    with pytest.warns(DatasetWarning, match=r"skipping 2 damaged image\(s\)"):
        report = check_dataset(ds, skip_corrupt=True)
    assert sorted(p for p, _ in report.damaged) == sorted([truncated, garbage])
    assert len(report.dataset.train) == len(ds.train) - 1 and len(report.dataset.query) == len(ds.query) - 1
    listed = report.dataset.meta["skipped"]["damaged images"]  # type: ignore[index]
    assert listed["count"] == 2 and any(garbage in item for item in listed["items"])

    _truncate(gallery)
    with pytest.raises(DatasetCheckError, match=r"1 damaged gallery images .* cannot be skipped"):
        check_dataset(ds, skip_corrupt=True)


def test_sysu_trial_table_is_checked_against_the_requested_trials(sysu_copy: Path) -> None:
    perm = sysu_copy / "exp" / "rand_perm_cam.mat"
    write_rand_perm_cam(perm, {key: rows[:3] for key, rows in read_rand_perm_cam(perm).items()})
    ds = parse_sysu(sysu_copy)
    with pytest.raises(
        DatasetCheckError, match=r"rand_perm_cam\.mat holds 3 trials .* asks for 10; use num_trials <= 3"
    ):
        check_dataset(ds, num_trials=10)
    assert check_dataset(ds, num_trials=3).damaged == ()

    table = read_rand_perm_cam(perm)
    (cam, pid), rows = next((k, v) for k, v in table.items() if k[0] == 1 and k[1] in {s.pid for s in ds.gallery})
    table[(cam, pid)] = np.where(rows == rows[0, 0], 99, rows)  # names an image number that does not exist
    write_rand_perm_cam(perm, table)
    with pytest.raises(DatasetCheckError, match=rf"gallery images that .* picks .* missing .*cam1/{pid:04d}/0099\.jpg"):
        check_dataset(ds, num_trials=3)


def test_check_writable(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "a"
    assert check_writable(target, needed_bytes=1) == target and not target.exists()  # nothing created
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=rf"out-dir {tmp_path / 'file'} is a file"):
        check_writable(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match=rf"cannot be created: {tmp_path / 'file'} is a file"):
        check_writable(tmp_path / "file" / "run")
    with pytest.raises(OSError, match=rf"out-dir {target}: only .* free .* needed") as info:
        check_writable(target, needed_bytes=1 << 60)
    assert info.value.errno == errno.ENOSPC


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def test_check_writable_read_only(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        # root ignores permissions: then use sysfs, where nobody may create files
        target = locked if not _writable(locked) else Path("/sys/idkl-run")
        if target != locked and _writable(target.parent):
            pytest.skip("no read-only folder available")
        with pytest.raises(PermissionError, match=rf"out-dir {target} is not writable.*choose another folder"):
            check_writable(target)
    finally:
        locked.chmod(0o755)
