"""Dataset parsers (SYSU-MM01, RegDB, LLCM), the registry, dataset_statistics and ImageDataset."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from idkl_lib.data import (
    DATASETS,
    INFRARED,
    VISIBLE,
    ImageDataset,
    Sample,
    VIDataset,
    build_dataset,
    dataset_statistics,
    parse_llcm,
    parse_regdb,
    parse_sysu,
)
from idkl_lib.data._common import DatasetWarning
from idkl_lib.data.llcm import camera_from_name

_AS_REAL = shutil.ignore_patterns(".synthetic.json")  # copies stand for real releases that the tests then damage


@pytest.fixture
def sysu_copy(sysu_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sysu_root, tmp_path / "sysu", ignore=_AS_REAL))


@pytest.fixture
def regdb_copy(regdb_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(regdb_root, tmp_path / "regdb", ignore=_AS_REAL))


@pytest.fixture
def llcm_copy(llcm_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(llcm_root, tmp_path / "llcm", ignore=_AS_REAL))


def _first_line_ids(path: Path) -> list[int]:
    line = path.read_text().splitlines()[0]
    return [int(t) for t in line.split(",") if t.strip()]


# ----------------------------------------------------------------------------------------------------- SYSU


def test_sysu_matches_a_naive_directory_walk(sysu_root: Path, sysu_dataset: VIDataset) -> None:
    train_ids = set(_first_line_ids(sysu_root / "exp/train_id.txt")) | set(
        _first_line_ids(sysu_root / "exp/val_id.txt")
    )
    test_ids = set(_first_line_ids(sysu_root / "exp/test_id.txt"))
    expected: dict[str, set[tuple[str, int, int, int]]] = {"train": set(), "query": set(), "gallery": set()}
    relabel = {pid: i for i, pid in enumerate(sorted(train_ids))}
    for dirpath, _, files in os.walk(sysu_root):
        for name in files:
            if not name.endswith(".jpg"):
                continue
            cam = int(Path(dirpath).parent.name[-1])
            pid = int(Path(dirpath).name)
            mod = INFRARED if cam in (3, 6) else VISIBLE
            path = str(Path(dirpath, name).resolve())
            if pid in train_ids:
                expected["train"].add((path, relabel[pid], cam, mod))
            elif cam in (3, 6):
                expected["query"].add((path, pid, cam, mod))
            else:
                expected["gallery"].add((path, pid, cam, mod))
    for split in ("train", "query", "gallery"):
        records = getattr(sysu_dataset, split)
        assert {(s.path, s.pid, s.camid, s.modality) for s in records} == expected[split]
        assert [s.path for s in records] == sorted(s.path for s in records)
    assert sysu_dataset.num_train_ids == len(train_ids) == 12
    assert sysu_dataset.meta["train_id_map"] == relabel
    assert Path(str(sysu_dataset.meta["rand_perm_cam"])) == (sysu_root / "exp/rand_perm_cam.mat").resolve()
    assert {s.pid for s in sysu_dataset.query} == test_ids
    assert sysu_dataset.name == "sysu" and sysu_dataset.root == sysu_root.resolve()


def test_sysu_ignores_non_integer_folders_and_non_jpg_files(sysu_copy: Path, sysu_dataset: VIDataset) -> None:
    (sysu_copy / "cam1" / "notes").mkdir()
    Image.new("RGB", (4, 4)).save(sysu_copy / "cam1" / "notes" / "0001.jpg")
    (sysu_copy / "cam2" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (4, 4)).save(sysu_copy / "extra.jpg")  # a stray jpg at the root: no recursive glob picks it
    some_id = next(p for p in (sysu_copy / "cam4").iterdir())
    (some_id / "readme.txt").write_text("x")
    with pytest.warns(DatasetWarning, match=r"2 item\(s\) left out: 1 entries that are not integer identity folders"):
        ds = parse_sysu(sysu_copy)
    assert ds.meta["skipped"] == {
        "entries that are not integer identity folders": {"count": 1, "items": ["cam1/notes"]},
        "entries of identity folders that are not .jpg images": {
            "count": 1,
            "items": [f"cam4/{some_id.name}/readme.txt"],
        },
    }

    def rel(records: tuple[Sample, ...], root: Path) -> list[tuple[str, int]]:
        return [(str(Path(s.path).relative_to(root.resolve())), s.pid) for s in records]

    assert rel(ds.train, sysu_copy) == rel(sysu_dataset.train, sysu_dataset.root)
    assert rel(ds.gallery, sysu_copy) == rel(sysu_dataset.gallery, sysu_dataset.root)


def test_sysu_errors(sysu_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="root not found"):
        parse_sysu(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="root must be"):
        parse_sysu(None)  # type: ignore[arg-type]

    (sysu_copy / "exp/rand_perm_cam.mat").rename(tmp_path / "perm.mat")
    with pytest.raises(FileNotFoundError, match=r"rand_perm_cam\.mat.*evaluation split.*official release"):
        parse_sysu(sysu_copy)
    (tmp_path / "perm.mat").rename(sysu_copy / "exp/rand_perm_cam.mat")

    (sysu_copy / "exp/train_id.txt").rename(tmp_path / "train_id.txt")
    with pytest.raises(FileNotFoundError, match=r"expected <root>/exp/train_id\.txt"):
        parse_sysu(sysu_copy)
    (tmp_path / "train_id.txt").rename(sysu_copy / "exp/train_id.txt")

    (sysu_copy / "cam4").rename(tmp_path / "cam4")
    with pytest.raises(FileNotFoundError, match=r"expected camera folder <root>/cam4"):
        parse_sysu(sysu_copy)
    (tmp_path / "cam4").rename(sysu_copy / "cam4")


def test_sysu_empty_camera_folder(sysu_copy: Path) -> None:
    for child in (sysu_copy / "cam5").iterdir():
        shutil.rmtree(child)
    with pytest.raises(ValueError, match=r"cam5 contains no"):
        parse_sysu(sysu_copy)


def test_sysu_training_identity_with_one_modality_is_named(sysu_copy: Path) -> None:
    victim = _first_line_ids(sysu_copy / "exp/train_id.txt")[0]
    for cam in (3, 6):
        shutil.rmtree(sysu_copy / f"cam{cam}" / f"{victim:04d}")
    with pytest.raises(ValueError, match=rf"visible-only \[{victim}\], infrared-only \[\]"):
        parse_sysu(sysu_copy)


def test_sysu_malformed_and_overlapping_split_files(sysu_copy: Path) -> None:
    test_ids = _first_line_ids(sysu_copy / "exp/test_id.txt")
    original = (sysu_copy / "exp/train_id.txt").read_text()
    (sysu_copy / "exp/train_id.txt").write_text(original.strip() + f",{test_ids[0]}\n")
    with pytest.raises(ValueError, match=rf"ids \[{test_ids[0]}\] are listed both"):
        parse_sysu(sysu_copy)
    (sysu_copy / "exp/train_id.txt").write_text("1,2,x3\n")
    with pytest.raises(ValueError, match=r"train_id\.txt:1: expected integer ids separated by commas.*'x3'"):
        parse_sysu(sysu_copy)
    (sysu_copy / "exp/test_id.txt").write_text("\n")
    (sysu_copy / "exp/train_id.txt").write_text(original)
    with pytest.raises(ValueError, match=r"test_id\.txt lists no identity"):
        parse_sysu(sysu_copy)


# ---------------------------------------------------------------------------------------------------- RegDB


def _idx_lines(path: Path) -> list[tuple[str, int]]:
    return [(line.split(" ")[0], int(line.split(" ")[1])) for line in path.read_text().splitlines() if line]


def test_regdb_trial_matches_its_index_files(regdb_root: Path) -> None:
    for trial in (1, 7):
        ds = parse_regdb(regdb_root, trial=trial)
        lists = {
            f"{s}_{m}": _idx_lines(regdb_root / f"idx/{s}_{m}_{trial}.txt")
            for s in ("train", "test")
            for m in ("visible", "thermal")
        }
        train_folder_ids = sorted({int(r.split("/")[1]) for r, _ in lists["train_visible"] + lists["train_thermal"]})
        relabel = {pid: i for i, pid in enumerate(train_folder_ids)}
        expected_train = {
            (str((regdb_root / r).resolve()), relabel[int(r.split("/")[1])], 2 if r.startswith("Visible") else 3)
            for r, _ in lists["train_visible"] + lists["train_thermal"]
        }
        assert {(s.path, s.pid, s.camid) for s in ds.train} == expected_train
        assert {(s.path, s.pid) for s in ds.query} == {
            (str((regdb_root / r).resolve()), int(r.split("/")[1])) for r, _ in lists["test_thermal"]
        }
        assert {(s.path, s.pid) for s in ds.gallery} == {
            (str((regdb_root / r).resolve()), int(r.split("/")[1])) for r, _ in lists["test_visible"]
        }
        assert all(s.modality == INFRARED and s.camid == 3 for s in ds.query)
        assert all(s.modality == VISIBLE and s.camid == 2 for s in ds.gallery)
        assert all((s.modality == INFRARED) == (s.camid == 3) for s in ds.train)
        assert ds.meta["trial"] == trial and ds.meta["train_id_map"] == relabel
    assert {s.pid for s in parse_regdb(regdb_root, 1).query} != {s.pid for s in parse_regdb(regdb_root, 7).query}


def test_regdb_identity_from_folder_and_path_normalisation(regdb_copy: Path, regdb_dataset: VIDataset) -> None:
    for name in ("test_thermal_1.txt", "train_visible_1.txt"):
        path = regdb_copy / "idx" / name
        lines = _idx_lines(path)  # rewritten with wrong labels, a double space, "./" and Windows separators
        windows = [".\\" + rel.replace("/", "\\") for rel, _ in lines]
        path.write_text("".join(f"{rel}  999\r\n" for rel in windows))
    ds = parse_regdb(regdb_copy, 1)
    assert [s.pid for s in ds.query] == [s.pid for s in regdb_dataset.query]
    assert [s.pid for s in ds.train] == [s.pid for s in regdb_dataset.train]
    assert [Path(s.path).relative_to(ds.root) for s in ds.query] == [
        Path(s.path).relative_to(regdb_dataset.root) for s in regdb_dataset.query
    ]


@pytest.mark.parametrize("trial", [0, 11, -1])
def test_regdb_trial_out_of_range(regdb_root: Path, trial: int) -> None:
    with pytest.raises(ValueError, match=r"trial must be in 1\.\.10"):
        parse_regdb(regdb_root, trial=trial)


def test_regdb_trial_must_be_int(regdb_root: Path) -> None:
    with pytest.raises(TypeError, match="trial must be an int"):
        parse_regdb(regdb_root, trial="1")  # type: ignore[arg-type]


def test_regdb_errors(regdb_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="root not found"):
        parse_regdb(tmp_path / "missing")
    (regdb_copy / "idx/test_visible_3.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"expected <root>/idx/test_visible_3\.txt"):
        parse_regdb(regdb_copy, trial=3)
    (regdb_copy / "idx/train_thermal_2.txt").write_text("Thermal/5/a.bmp\n")
    with pytest.raises(ValueError, match=r"train_thermal_2\.txt:1: expected '<relative path> <integer label>'"):
        parse_regdb(regdb_copy, trial=2)
    (regdb_copy / "idx/train_thermal_2.txt").write_text("Other/5/a.bmp 0\n")
    with pytest.raises(ValueError, match=r"train_thermal_2\.txt:1: path 'Other/5/a\.bmp' must start with"):
        parse_regdb(regdb_copy, trial=2)
    (regdb_copy / "idx/train_thermal_2.txt").write_text("Thermal/5/ghost.bmp 0\n")
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) listed in .*train_thermal_2\.txt do not exist"):
        parse_regdb(regdb_copy, trial=2)
    (regdb_copy / "idx/train_thermal_2.txt").write_text("")
    with pytest.raises(ValueError, match=r"train_thermal_2\.txt lists no images"):
        parse_regdb(regdb_copy, trial=2)


def test_regdb_empty_modality_folder(regdb_copy: Path) -> None:
    shutil.rmtree(regdb_copy / "Thermal")
    with pytest.raises(FileNotFoundError, match=r"expected folder <root>/Thermal"):
        parse_regdb(regdb_copy)
    (regdb_copy / "Thermal").mkdir()
    with pytest.raises(ValueError, match=r"camera folder .*Thermal is empty"):
        parse_regdb(regdb_copy)


def test_regdb_training_identity_with_one_modality(regdb_copy: Path) -> None:
    path = regdb_copy / "idx/train_thermal_1.txt"
    lines = _idx_lines(path)
    victim = int(lines[0][0].split("/")[1])
    path.write_text("".join(f"{r} {lab}\n" for r, lab in lines if int(r.split("/")[1]) != victim))
    with pytest.raises(ValueError, match=rf"visible-only \[{victim}\]"):
        parse_regdb(regdb_copy)


# ----------------------------------------------------------------------------------------------------- LLCM


def test_camera_from_name() -> None:
    assert camera_from_name("0351_c06_s200656_f4830_nir.jpg") == 6
    assert camera_from_name("0007_c12_s1_f2_vis.jpg") == 12
    with pytest.raises(ValueError, match=r"cannot read the camera id from file name '0351_s1_nir\.jpg'"):
        camera_from_name("0351_s1_nir.jpg")


def test_llcm_keeps_true_cameras(llcm_root: Path, llcm_dataset: VIDataset) -> None:
    for split, mods in (("train", ("vis", "nir")), ("query", ("nir",)), ("gallery", ("vis",))):
        lines = [
            rel
            for m in mods
            for rel, _ in _idx_lines(llcm_root / f"idx/{'train' if split == 'train' else 'test'}_{m}.txt")
        ]
        expected = set()
        for rel in lines:
            camid = int(re.search(r"_c(\d\d)_", rel).group(1))  # type: ignore[union-attr]
            expected.add((str((llcm_root / rel).resolve()), camid, INFRARED if rel.startswith("nir/") else VISIBLE))
        assert {(s.path, s.camid, s.modality) for s in getattr(llcm_dataset, split)} == expected
    cams = {(s.modality, s.camid) for s in llcm_dataset.train}
    assert {c for m, c in cams if m == VISIBLE} & {c for m, c in cams if m == INFRARED}, "cameras 3, 4 record both"
    assert sorted({s.pid for s in llcm_dataset.train}) == list(range(llcm_dataset.num_train_ids))
    folder_ids = {int(Path(s.path).parent.name) for s in llcm_dataset.train}
    assert llcm_dataset.meta["train_id_map"] == {pid: i for i, pid in enumerate(sorted(folder_ids))}


def test_llcm_errors(llcm_copy: Path) -> None:
    (llcm_copy / "idx/test_nir.txt").write_text("nir/0001/0001_s1_f2_nir.jpg 0\n")
    with pytest.raises(ValueError, match=r"test_nir\.txt:1: .*cannot read the camera id"):
        parse_llcm(llcm_copy)
    (llcm_copy / "idx/test_nir.txt").write_text("thermal/0001/0001_c01_s1_f2_nir.jpg 0\n")
    with pytest.raises(ValueError, match=r"test_nir\.txt:1: path .* must start with 'vis/' or 'nir/'"):
        parse_llcm(llcm_copy)
    (llcm_copy / "idx/test_nir.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"expected <root>/idx/test_nir\.txt"):
        parse_llcm(llcm_copy)
    shutil.rmtree(llcm_copy / "nir")
    (llcm_copy / "nir").mkdir()
    with pytest.raises(ValueError, match=r"camera folder .*nir is empty"):
        parse_llcm(llcm_copy)


def test_llcm_training_identity_with_one_modality(llcm_copy: Path) -> None:
    path = llcm_copy / "idx/train_vis.txt"
    lines = _idx_lines(path)
    victim = int(lines[0][0].split("/")[1])
    path.write_text("".join(f"{r} {lab}\n" for r, lab in lines if int(r.split("/")[1]) != victim))
    with pytest.raises(ValueError, match=rf"infrared-only \[{victim}\]"):
        parse_llcm(llcm_copy)


# ------------------------------------------------------------------------------------------ registry, statistics


def test_build_dataset(regdb_root: Path, regdb_dataset: VIDataset) -> None:
    assert set(DATASETS) == {"sysu", "regdb", "llcm"}
    assert build_dataset("regdb", regdb_root) == regdb_dataset
    assert build_dataset("regdb", regdb_root, trial=4) == parse_regdb(regdb_root, trial=4)
    with pytest.raises(ValueError, match=r"unknown dataset 'market'; valid names: llcm, regdb, sysu"):
        build_dataset("market", regdb_root)


def test_dataset_statistics_against_naive_counts(llcm_dataset: VIDataset) -> None:
    stats = dataset_statistics(llcm_dataset)
    assert stats["name"] == "llcm" and stats["num_train_ids"] == llcm_dataset.num_train_ids
    for split in ("train", "query", "gallery"):
        records = getattr(llcm_dataset, split)
        got = stats[split]
        assert got["images"] == len(records)
        assert got["ids"] == len({s.pid for s in records})
        assert got["cameras"] == sorted({s.camid for s in records})
        for mod, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
            sub = [s for s in records if s.modality == mod]
            assert got["per_modality"][name] == {
                "ids": len({s.pid for s in sub}),
                "images": len(sub),
                "cameras": sorted({s.camid for s in sub}),
            }
    assert stats["query"]["per_modality"]["visible"]["images"] == 0
    with pytest.raises(TypeError, match="expects a VIDataset"):
        dataset_statistics([])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- ImageDataset


def test_image_dataset_items_and_collate(sysu_dataset: VIDataset) -> None:
    samples = sysu_dataset.query[:3] + sysu_dataset.gallery[:3]
    ds = ImageDataset(samples)
    image, pid, camid, modality, index = ds[4]
    expected = torch.from_numpy(np.array(Image.open(samples[4].path).convert("RGB"))).permute(2, 0, 1) / 255.0
    assert torch.allclose(image, expected)
    assert (pid, camid, modality, index) == (samples[4].pid, samples[4].camid, samples[4].modality, 4)
    assert ds[-1][4] == 5 and len(ds) == 6
    batch = next(iter(DataLoader(ds, batch_size=6)))
    assert batch[0].shape == (6, 3, 32, 16)
    assert batch[3].tolist() == [s.modality for s in samples] and batch[4].dtype == torch.int64
    with pytest.raises(IndexError, match="out of range"):
        ds[6]


def test_image_dataset_converts_grayscale_rgba_and_palette(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "g.bmp")
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 50
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(gray, "L").convert("P").save(tmp_path / "p.png")
    samples = [Sample(str(tmp_path / n), 0, 3, INFRARED) for n in ("g.bmp", "a.png", "p.png")]
    ds = ImageDataset(samples, transform=lambda im: torch.from_numpy(np.asarray(im).copy()))
    g, a, p = ds[0][0], ds[1][0], ds[2][0]
    assert g.shape == (3, 4, 3) and torch.equal(g[..., 0], torch.from_numpy(gray)) and torch.equal(g[..., 0], g[..., 2])
    assert a.shape == (3, 4, 3) and a[..., 0].eq(200).all() and a[..., 1:].eq(0).all()
    assert torch.equal(p[..., 1], torch.from_numpy(gray))


def _truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def test_image_dataset_corrupt_image_raises_naming_the_file(sysu_copy: Path) -> None:
    ds = parse_sysu(sysu_copy)
    _truncate(ds.train[5].path)
    with pytest.raises(OSError, match=rf"cannot read image {re.escape(ds.train[5].path)}.*skip_corrupt=True"):
        ImageDataset(ds.train)[5]
    Path(ds.train[6].path).unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(ds.train[6].path)):
        ImageDataset(ds.train, skip_corrupt=True)[6]


def test_image_dataset_skip_corrupt_returns_same_identity_and_modality(sysu_copy: Path) -> None:
    ds = parse_sysu(sysu_copy)
    train = ds.train
    bad = 7
    _truncate(train[bad].path)
    with pytest.warns(RuntimeWarning, match=rf"skipping unreadable image {re.escape(train[bad].path)}"):
        _, pid, _, modality, used = ImageDataset(train, skip_corrupt=True)[bad]
    candidates = [
        i for i, s in enumerate(train) if i != bad and (s.pid, s.modality) == (train[bad].pid, train[bad].modality)
    ]
    nearest = min(candidates, key=lambda i: (abs(i - bad), i < bad))
    assert (pid, modality, used) == (train[bad].pid, train[bad].modality, nearest)
    # when no other image of that identity and modality is readable, the nearest readable record of any identity
    other = Sample(train[1].path, 99, 1, VISIBLE)
    with pytest.warns(RuntimeWarning, match="skipping unreadable image"):
        assert ImageDataset([train[bad], other], skip_corrupt=True)[0][1:] == (99, 1, VISIBLE, 1)
    with pytest.raises(OSError, match="no readable image left"):
        ImageDataset([train[bad]], skip_corrupt=True)[0]


def test_image_dataset_rejects_bad_arguments(sysu_dataset: VIDataset) -> None:
    with pytest.raises(TypeError, match="samples must be a sequence"):
        ImageDataset(iter(sysu_dataset.train))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="transform must be callable"):
        ImageDataset(sysu_dataset.train, transform=3)  # type: ignore[arg-type]


def test_registry_entries_hold_each_datasets_facts(regdb_root: Path) -> None:
    from idkl_lib.data import dataset_info

    for name, info in DATASETS.items():
        assert info.name == name and info.published["num_train_ids"] > 0 and info.source and info.protocol
        assert info.recipe["epochs"] == 160 and info.synthetic_counts is not None
    assert dict(DATASETS["sysu"].camera_alias) == {3: 2} and not DATASETS["regdb"].camera_alias
    # the same keywords for every dataset: a dataset without splits ignores trial=
    assert build_dataset("regdb", regdb_root, trial=2) == parse_regdb(regdb_root, trial=2)
    with pytest.raises(ValueError, match="llcm, regdb, sysu"):
        dataset_info("market")
