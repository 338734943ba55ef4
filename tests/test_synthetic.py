"""The synthetic dataset generator: layouts, determinism, the marker, split files and the rendering contract."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idkl_lib.data import INFRARED, VISIBLE, VIDataset, parse_llcm, parse_regdb, read_rand_perm_cam, write_synthetic
from idkl_lib.data import synthetic as syn

SMALL = {"num_train_ids": 4, "num_test_ids": 2, "images_per_camera": 2, "height": 32, "width": 16}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files_and_different_seed_differs(tmp_path: Path) -> None:
    for layout in ("sysu", "regdb", "llcm"):
        a = _files(write_synthetic(tmp_path / f"{layout}_a", layout=layout, seed=3, **SMALL))
        b = _files(write_synthetic(tmp_path / f"{layout}_b", layout=layout, seed=3, **SMALL))
        c = _files(write_synthetic(tmp_path / f"{layout}_c", layout=layout, seed=4, **SMALL))
        assert a == b
        images = [k for k in a if k.endswith((".jpg", ".bmp"))]
        assert len(images) > 0
        differing = [k for k in images if c.get(k) != a[k]]
        assert len(differing) >= 0.9 * len(images), layout


def test_marker_reuse_mismatch_and_overwrite(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "ds", layout="sysu", seed=1, **SMALL)
    marker = json.loads((root / ".synthetic.json").read_text())
    assert marker["complete"] is True and marker["seed"] == 1 and marker["layout"] == "sysu"
    assert {k: marker[k] for k in SMALL} == SMALL
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")}
    assert write_synthetic(tmp_path / "ds", layout="sysu", seed=1, **SMALL) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")} == stamps  # reused, nothing rewritten

    with pytest.raises(ValueError, match=r"different parameters \(layout: 'sysu' -> 'llcm', seed: 1 -> 2\).*overwrite"):
        write_synthetic(root, layout="llcm", seed=2, **SMALL)
    (root / "my_notes.txt").write_text("keep me")
    write_synthetic(root, layout="llcm", seed=2, overwrite=True, **SMALL)
    assert not (root / "cam1").exists() and not (root / "exp").exists()
    assert (root / "my_notes.txt").read_text() == "keep me"
    assert isinstance(parse_llcm(root), VIDataset)


def test_incomplete_dataset_is_regenerated(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "ds", layout="regdb", **SMALL)
    marker = json.loads((root / ".synthetic.json").read_text())
    (root / ".synthetic.json").write_text(json.dumps({**marker, "complete": False}))
    victim = next(root.rglob("*.bmp"))
    victim.unlink()
    write_synthetic(root, layout="regdb", **SMALL)
    assert victim.is_file()
    assert json.loads((root / ".synthetic.json").read_text())["complete"] is True


def test_refuses_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "cam1").mkdir()
    for overwrite in (False, True):
        with pytest.raises(ValueError, match=r"not an empty folder, and holds no \.synthetic\.json"):
            write_synthetic(tmp_path / "real", overwrite=overwrite, **SMALL)
    assert (tmp_path / "real" / "cam1").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not an empty folder"):
        write_synthetic(tmp_path / "file", **SMALL)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layout": "market"}, ValueError, r"unknown layout 'market'; valid layouts: sysu, regdb, llcm"),
        ({"num_train_ids": 0}, ValueError, r"num_train_ids must be >= 1, got 0"),
        ({"seed": -1}, ValueError, r"seed must be >= 0"),
        ({"height": "128"}, TypeError, r"height must be an int"),
        ({"images_per_camera": True}, TypeError, r"images_per_camera must be an int"),
        ({"width": 4}, ValueError, r"width must be >= 8"),
    ],
)
def test_argument_errors(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        write_synthetic(tmp_path / "x", **{**SMALL, **kwargs})
    assert not (tmp_path / "x").exists()


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, tuple[int, int, int]] = {}

    def record(layout: str):
        return lambda root, w, n_train, n_test, per_cam: seen.__setitem__(layout, (n_train, n_test, per_cam))

    monkeypatch.setattr(syn, "_LAYOUT_WRITERS", {k: record(k) for k in syn.LAYOUTS})
    for layout in syn.LAYOUTS:
        write_synthetic(tmp_path / layout, layout=layout)
    assert seen == {"sysu": (48, 24, 4), "regdb": (48, 48, 10), "llcm": (48, 24, 4)}


def test_sysu_files_and_permutation_table(sysu_root: Path, sysu_dataset: VIDataset) -> None:
    ids = {
        name: [int(t) for t in (sysu_root / f"exp/{name}_id.txt").read_text().split("\n")[0].split(",") if t]
        for name in ("train", "val", "test")
    }
    assert len(ids["train"]) + len(ids["val"]) == 12 and len(ids["test"]) == 6 and len(ids["val"]) == 3
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(1, 19))
    table = read_rand_perm_cam(sysu_root / "exp/rand_perm_cam.mat")
    assert set(table) == {(cam, pid) for cam in range(1, 7) for pid in range(1, 19)}
    for (cam, pid), rows in table.items():
        numbers = sorted(int(p.stem) for p in (sysu_root / f"cam{cam}" / f"{pid:04d}").glob("*.jpg"))
        assert numbers == [1, 2, 3]
        assert rows.shape == (10, 3)
        assert all(sorted(row.tolist()) == numbers for row in rows)
    assert len({tuple(r) for rows in table.values() for r in rows.tolist()}) > 1
    with Image.open(sysu_dataset.query[0].path) as im:
        assert im.mode == "RGB" and im.size == (16, 32)
        channels = np.asarray(im).astype(int)
    assert np.abs(channels[..., 0] - channels[..., 1]).max() <= 2  # infrared: three (nearly) equal channels


def test_regdb_trials_split_identities_half_and_half(regdb_root: Path, regdb_dataset: VIDataset) -> None:
    all_ids = set(range(1, 19))
    splits = []
    for trial in range(1, 11):
        per_file = {}
        for split in ("train", "test"):
            for mod in ("visible", "thermal"):
                lines = (regdb_root / f"idx/{split}_{mod}_{trial}.txt").read_text().splitlines()
                rel = [line.split(" ") for line in lines]
                folders = [int(r.split("/")[1]) for r, _ in rel]
                labels = [int(lab) for _, lab in rel]
                order = sorted(set(folders))
                assert labels == [order.index(f) for f in folders]  # label = rank of the identity within the split
                assert all(r.startswith("Visible/" if mod == "visible" else "Thermal/") for r, _ in rel)
                assert all(folders.count(f) == 4 for f in set(folders))
                per_file[(split, mod)] = set(folders)
        train, test = per_file[("train", "visible")], per_file[("test", "visible")]
        assert train == per_file[("train", "thermal")] and test == per_file[("test", "thermal")]
        assert len(train) == 12 and len(test) == 6 and train | test == all_ids and not train & test
        splits.append(frozenset(test))
    assert len(set(splits)) > 1
    name = Path(regdb_dataset.query[0].path).name
    assert re.fullmatch(r"(fe)?male_(front|back)_t_\d{5}_\d+\.bmp", name)
    with Image.open(regdb_dataset.query[0].path) as im:
        assert im.mode == "L"
    with Image.open(regdb_dataset.gallery[0].path) as im:
        assert im.mode == "RGB"


def test_regdb_parses_every_trial(regdb_root: Path) -> None:
    for trial in range(1, 11):
        ds = parse_regdb(regdb_root, trial=trial)
        assert ds.num_train_ids == 12 and len(ds.train) == 12 * 8 and len(ds.query) == len(ds.gallery) == 24


def test_llcm_names_and_camera_coverage(llcm_root: Path, llcm_dataset: VIDataset) -> None:
    records = llcm_dataset.train + llcm_dataset.query + llcm_dataset.gallery
    per_person: dict[tuple[str, int], set[int]] = {}
    for s in records:
        folder = "nir" if s.modality == INFRARED else "vis"
        m = re.fullmatch(rf"(\d{{4}})_c(\d\d)_s\d{{6}}_f\d+_{folder}\.jpg", Path(s.path).name)
        assert m is not None and int(m.group(2)) == s.camid and Path(s.path).parent.parent.name == folder
        per_person.setdefault((folder, int(m.group(1))), set()).add(s.camid)
    for (folder, _), cams in per_person.items():
        allowed = syn.LLCM_NIR_CAMERAS if folder == "nir" else syn.LLCM_VISIBLE_CAMERAS
        assert len(cams) >= 2 and cams <= set(allowed)
    assert len({frozenset(c) for c in per_person.values()}) > 1  # people are not all in the same cameras


def _ident_with_new_colours(ident: syn._Identity, rng: np.random.Generator) -> syn._Identity:
    def recolour(g: syn._Garment) -> syn._Garment:
        new = rng.uniform(0, 1, (2, 3)).astype(np.float32)
        return dataclasses.replace(g, rgb_a=new[0], rgb_b=new[1])

    rgb = {k: rng.uniform(0, 1, 3).astype(np.float32) for k in ident.rgb}
    return dataclasses.replace(ident, upper=recolour(ident.upper), lower=recolour(ident.lower), rgb=rgb)


def test_infrared_ignores_colour_but_keeps_heat_and_shape() -> None:
    ident = syn._make_identity(0, 5)
    recoloured = _ident_with_new_colours(ident, np.random.default_rng(1))
    cams = {ir: syn._make_camera(0, 3, ir, 64, 32) for ir in (False, True)}

    def render(i: syn._Identity, infrared: bool) -> np.ndarray:
        return syn._render(i, cams[infrared], 4, np.random.default_rng(7), 64, 32)[0]

    ir = render(ident, True)
    assert ir.shape == (4, 64, 32) and ir.dtype == np.uint8
    assert np.array_equal(render(recoloured, True), ir)  # colour does not reach the infrared image
    assert not np.array_equal(render(recoloured, False), render(ident, False))  # ... but does reach the visible one
    hotter = dataclasses.replace(ident, ir={**ident.ir, "skin": ident.ir["skin"] + 0.2})
    assert render(hotter, True).astype(int).sum() > ir.astype(int).sum()
    wider = dataclasses.replace(ident, shoulder=ident.shoulder + 0.05)
    assert not np.array_equal(render(wider, True), ir)


def test_identity_attributes_are_deterministic_and_vary() -> None:
    a, b = syn._make_identity(0, 1), syn._make_identity(0, 1)
    assert a.upper.ir_a == b.upper.ir_a and np.array_equal(a.upper.rgb_a, b.upper.rgb_a) and a.shoulder == b.shoulder
    people = [syn._make_identity(0, pid) for pid in range(1, 60)]
    assert len({p.upper.pattern for p in people}) == 4 and len({p.bag for p in people}) == 3
    assert any(p.hat for p in people) and any(p.skirt for p in people) and any(p.sleeve < 1 for p in people)
    patterned = [p.upper for p in people if p.upper.pattern != 0]
    assert min(abs(g.ir_a - g.ir_b) for g in patterned) >= 0.1  # the pattern survives in infrared
    assert {p.ir["skin"] for p in people} != {people[0].ir["skin"]}


def test_visible_and_infrared_modalities_in_parsed_datasets(sysu_dataset: VIDataset) -> None:
    assert {s.modality for s in sysu_dataset.query} == {INFRARED}
    assert {s.modality for s in sysu_dataset.gallery} == {VISIBLE}
    with Image.open(sysu_dataset.gallery[0].path) as im:
        rgb = np.asarray(im).astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() > 20  # visible images carry colour


def test_sysu_written_by_several_processes_is_byte_identical(tmp_path: Path) -> None:
    kwargs = dict(layout="sysu", num_train_ids=3, num_test_ids=2, images_per_camera=1, height=32, width=16, seed=4)
    one = write_synthetic(tmp_path / "one", **kwargs)  # type: ignore[arg-type]
    two = write_synthetic(tmp_path / "two", workers=2, **kwargs)  # type: ignore[arg-type]
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file()) and len(files) > 30
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
