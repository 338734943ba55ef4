"""Synthetic visible-infrared re-ID datasets written in the official SYSU-MM01, RegDB and LLCM layouts.

Real VI-ReID datasets are licensed, so the workbench ships this generator (docs/method.md#9-synthetic-dataset). It
writes real image files and every split file in the official layout (docs/method.md#10-dataset-layouts), so
:func:`parse_sysu`, :func:`parse_regdb`, :func:`parse_llcm` and the evaluation protocols run on it unchanged.

The persons are defined by :mod:`idkl_lib.data._synthetic_people` and drawn by :mod:`idkl_lib.data._synthetic_render`
(their docstrings describe both).
"""

from __future__ import annotations

import os
import secrets
import shutil
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..utils.io import atomic_write_json, atomic_write_text
from ..utils.lock import folder_lock
from ._synthetic_people import (  # noqa: F401 - the generator's internals stay reachable as synthetic._*
    _K_NAMES,
    _K_PERM,
    _K_SPLIT,
    _Garment,
    _Identity,
    _make_identity,
    _rng,
)
from ._synthetic_render import _Camera, _make_camera, _render, _save, _Writer  # noqa: F401 - the same
from .layout import describe_layout, find_real_dataset
from .marker import MARKER, count_files, count_mismatches, read_marker
from .sysu_perm import write_rand_perm_cam

GENERATOR_VERSION = 2
RESERVED_PID_START = 1_000_000
"""Identity numbers from here on are reserved for the pretraining population (:mod:`idkl_lib.pretrain`): no dataset
the generator writes reaches them, so a pretraining person is never a training or test person."""
LAYOUTS: tuple[str, ...] = ("sysu", "regdb", "llcm")
DEFAULT_IMAGES_PER_CAMERA: dict[str, int] = {"sysu": 4, "regdb": 10, "llcm": 4}
SYSU_NUM_TRIALS = 10
REGDB_NUM_TRIALS = 10
LLCM_VISIBLE_CAMERAS: tuple[int, ...] = (1, 2, 3, 4)
LLCM_NIR_CAMERAS: tuple[int, ...] = (3, 4, 5, 6)  # cams 3, 4 record both modalities, as LLCM cameras do day/night
_OWNED_ENTRIES = ("cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "exp", "Visible", "Thermal", "idx", "vis", "nir")


def _split_ids(seed: int, num_ids: int, num_test: int, *keys: int) -> tuple[list[int], list[int]]:
    """Random split of ids ``1..num_ids`` into (train, test), both sorted."""
    perm = _rng(seed, _K_SPLIT, *keys).permutation(np.arange(1, num_ids + 1))
    return sorted(int(i) for i in perm[num_test:]), sorted(int(i) for i in perm[:num_test])


def _write_sysu_person(root: Path, w: _Writer, pid: int, per_cam: int) -> None:
    for cam in range(1, 7):
        images, _ = w.render(pid, cam, cam in (3, 6), per_cam)
        _save(images, [root / f"cam{cam}" / f"{pid:04d}" / f"{i:04d}.jpg" for i in range(1, per_cam + 1)])


def _write_sysu_person_job(job: tuple[Path, int, int, int, float, int, int]) -> None:
    root, seed, height, width, evidence, pid, per_cam = job
    _write_sysu_person(root, _Writer(seed, height, width, evidence), pid, per_cam)


def _write_sysu(root: Path, w: _Writer, num_train: int, num_test: int, per_cam: int) -> None:
    total = num_train + num_test
    train_val, test = _split_ids(w.seed, total, num_test)
    val = set(_rng(w.seed, _K_SPLIT, 1).permutation(train_val)[: len(train_val) // 4].tolist())
    perm_rng = _rng(w.seed, _K_PERM)
    table: dict[tuple[int, int], np.ndarray] = {}
    if w.workers > 1:  # images depend only on (seed, pid, camera): the files are the same as with one process
        jobs = [(root, w.seed, w.height, w.width, w.evidence, pid, per_cam) for pid in range(1, total + 1)]
        with ProcessPoolExecutor(w.workers) as pool:
            list(pool.map(_write_sysu_person_job, jobs, chunksize=4))
    for pid in range(1, total + 1):
        if w.workers <= 1:
            _write_sysu_person(root, w, pid, per_cam)
        for cam in range(1, 7):
            table[(cam, pid)] = np.stack([perm_rng.permutation(per_cam) + 1 for _ in range(SYSU_NUM_TRIALS)])
    for name, ids in (("train", [i for i in train_val if i not in val]), ("val", sorted(val)), ("test", test)):
        atomic_write_text(root / "exp" / f"{name}_id.txt", ",".join(map(str, ids)) + "\n")
    write_rand_perm_cam(root / "exp" / "rand_perm_cam.mat", table)


def _write_regdb(root: Path, w: _Writer, num_train: int, num_test: int, per_cam: int) -> None:
    files: dict[str, dict[int, list[str]]] = {"Visible": {}, "Thermal": {}}
    for pid in range(1, num_train + num_test + 1):
        ident = w.identity(pid)
        gender = "female" if ident.skirt or ident.long_hair else "male"
        for folder, tag, camid in (("Visible", "v", 2), ("Thermal", "t", 3)):
            images, back = w.render(pid, camid, folder == "Thermal", per_cam)
            first = (pid - 1) * per_cam + 1  # running image number, as in the release's file names
            files[folder][pid] = [
                f"{folder}/{pid}/{gender}_{'back' if b else 'front'}_{tag}_{first + i:05d}_{pid}.bmp"
                for i, b in enumerate(back)
            ]
            _save(images, [root / rel for rel in files[folder][pid]])
    for trial in range(1, REGDB_NUM_TRIALS + 1):
        train, test = _split_ids(w.seed, num_train + num_test, num_test, 2, trial)
        for split, ids in (("train", train), ("test", test)):
            for folder in ("Visible", "Thermal"):
                lines = [f"{rel} {label}" for label, pid in enumerate(ids) for rel in files[folder][pid]]
                atomic_write_text(root / "idx" / f"{split}_{folder.lower()}_{trial}.txt", "\n".join(lines) + "\n")


def _llcm_cameras(rng: np.random.Generator, cameras: tuple[int, ...]) -> list[int]:
    """A person is seen by each camera with probability 0.75, and by at least two cameras of the modality."""
    chosen = [c for c in cameras if rng.uniform() < 0.75]
    if len(chosen) < 2:
        chosen = sorted(int(c) for c in rng.choice(cameras, 2, replace=False))
    return chosen


def _write_llcm(root: Path, w: _Writer, num_train: int, num_test: int, per_cam: int) -> None:
    train, test = _split_ids(w.seed, num_train + num_test, num_test, 3)
    files: dict[str, dict[int, list[str]]] = {"vis": {}, "nir": {}}
    for pid in range(1, num_train + num_test + 1):
        rng = _rng(w.seed, _K_NAMES, pid)
        for mod, cameras in (("vis", LLCM_VISIBLE_CAMERAS), ("nir", LLCM_NIR_CAMERAS)):
            files[mod][pid] = []
            for cam in _llcm_cameras(rng, cameras):
                seq = int(rng.integers(100000, 1000000))
                frames = np.sort(rng.choice(9000, per_cam, replace=False)) + 100
                names = [f"{mod}/{pid:04d}/{pid:04d}_c{cam:02d}_s{seq}_f{f}_{mod}.jpg" for f in frames]
                _save(w.render(pid, cam, mod == "nir", per_cam)[0], [root / n for n in names])
                files[mod][pid].extend(names)
    for split, ids in (("train", train), ("test", test)):
        for mod in ("vis", "nir"):
            lines = [f"{rel} {label}" for label, pid in enumerate(ids) for rel in files[mod][pid]]
            atomic_write_text(root / "idx" / f"{split}_{mod}.txt", "\n".join(lines) + "\n")


_LAYOUT_WRITERS: dict[str, Callable[[Path, _Writer, int, int, int], None]] = {
    "sysu": _write_sysu,
    "regdb": _write_regdb,
    "llcm": _write_llcm,
}


# ------------------------------------------------------------------------------------------------ public API


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"write_synthetic: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"write_synthetic: {name} must be >= {minimum}, got {value}")
    return int(value)


def _refuse_real_dataset(root: Path) -> None:
    found = find_real_dataset(root)
    if found is None:
        return
    folder, layout = found
    where = "is" if folder == root else f"is inside {folder}, which is"
    raise ValueError(
        f"write_synthetic: {root} {where} a real dataset: it looks like {describe_layout(layout)}. The workbench never "
        f"writes inside a real dataset. To use it, pass dataset={layout!r} (e.g. `-p dataset {layout}`) with data_root "
        f"{folder}; to generate synthetic data, choose a data_root outside it."
    )


def _reusable(root: Path, params: dict[str, object]) -> bool:
    """True when ``root`` holds the complete dataset of ``params`` with the file counts its marker records."""
    marker = read_marker(root)
    if not marker or marker.get("complete") is not True or any(marker.get(k) != v for k, v in params.items()):
        return False
    problems = count_mismatches(root, marker)
    if problems:
        warnings.warn(
            f"write_synthetic: the synthetic dataset at {root} does not match its {MARKER} "
            f"({'; '.join(problems[:3])}); rebuilding it",
            stacklevel=3,
        )
    return not problems


def _replaces_existing(root: Path, params: dict[str, object], overwrite: bool) -> bool:
    """False for a new or empty root, True for a synthetic dataset of this generator that may be replaced; raises
    for anything else."""
    if not root.exists() or (root.is_dir() and next(root.iterdir(), None) is None):
        return False
    marker = read_marker(root) if root.is_dir() else None
    if marker is None:
        raise ValueError(
            f"write_synthetic: {root} exists and is not an empty folder, and holds no {MARKER} marker. The generator "
            "only writes into a new or empty folder or one it created itself (it never deletes other data, even with "
            "overwrite=True); choose another root."
        )
    diff = {k: (marker.get(k), v) for k, v in params.items() if marker.get(k) != v}
    if diff and marker.get("complete") is True and not overwrite:
        shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in diff.items())
        raise ValueError(
            f"write_synthetic: {root} already holds a synthetic dataset written with different parameters "
            f"({shown}); pass overwrite=True to replace it or choose another root."
        )
    return True


def _swap_in(root: Path, built: Path) -> None:
    """Replace the generator's entries of ``root`` by those of ``built`` (other files in ``root`` stay)."""
    old = read_marker(root) or {}
    atomic_write_json(root / MARKER, {**old, "complete": False})  # a reader now sees an incomplete dataset
    replaced = built / ".replaced"
    replaced.mkdir()
    for name in _OWNED_ENTRIES:
        if (root / name).exists():
            os.rename(root / name, replaced / name)
    for entry in built.iterdir():
        if entry.name not in (MARKER, replaced.name):
            os.rename(entry, root / entry.name)
    os.replace(built / MARKER, root / MARKER)


def _build(root: Path, params: dict[str, object], replace: bool, workers: int = 1) -> None:
    for leftover in root.parent.glob(f".{root.name}.tmp-*"):  # of interrupted writers: only a lock holder makes them
        shutil.rmtree(leftover, ignore_errors=True)
    built = root.parent / f".{root.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    built.mkdir(parents=True)
    try:
        evidence = float(params.get("modality_specific_evidence", 0.0))  # type: ignore[arg-type]
        size = int(params["height"]), int(params["width"])  # type: ignore[call-overload]
        writer = _Writer(int(params["seed"]), *size, evidence, workers)  # type: ignore[call-overload]
        _LAYOUT_WRITERS[str(params["layout"])](
            built,
            writer,
            int(params["num_train_ids"]),  # type: ignore[call-overload]
            int(params["num_test_ids"]),  # type: ignore[call-overload]
            int(params["images_per_camera"]),  # type: ignore[call-overload]
        )
        counts = count_files(built)
        images = sum(1 for p in built.rglob("*") if p.suffix in (".jpg", ".bmp"))
        atomic_write_json(built / MARKER, {**params, "complete": True, "counts": counts, "images": images})
        if replace:
            _swap_in(root, built)
        else:
            if root.is_dir():
                root.rmdir()  # empty (checked under the lock); rename() onto it is not portable
            os.rename(built, root)
    finally:
        shutil.rmtree(built, ignore_errors=True)


def write_synthetic(
    root: str | os.PathLike[str],
    layout: str = "sysu",
    num_train_ids: int = 48,
    num_test_ids: int | None = None,
    images_per_camera: int | None = None,
    height: int = 128,
    width: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    modality_specific_evidence: float = 0.0,
    lock_timeout: float = 1800.0,
    workers: int = 1,
) -> Path:
    """Write a synthetic visible-infrared dataset in the official layout of ``layout``.

    Layouts (identity numbers ``1..num_train_ids + num_test_ids``, randomly assigned to the splits):

    * ``"sysu"``: ``cam{1..6}/<ID:04d>/<img:04d>.jpg`` (cams 3, 6 infrared), every person in every camera;
      ``exp/{train,val,test}_id.txt`` (a quarter of the training ids go to ``val``, merged back by the parser) and
      ``exp/rand_perm_cam.mat`` with 10 trials (rows = random permutations of the 1-based image numbers).
    * ``"regdb"``: ``Visible/<ID>/*.bmp`` (RGB) and ``Thermal/<ID>/*.bmp`` (8-bit grayscale), and
      ``idx/{train,test}_{visible,thermal}_{1..10}.txt``: each trial an independent random split into
      ``num_train_ids`` training and ``num_test_ids`` test identities (half/half by default, as in RegDB).
    * ``"llcm"``: ``vis/<ID:04d>/<ID:04d>_c<NN>_s<seq>_f<frame>_vis.jpg`` and the ``nir`` equivalent, and
      ``idx/{train,test}_{vis,nir}.txt``. Visible cameras are 1-4 and near-infrared cameras 3-6 (cameras 3 and 4
      record both modalities, as real LLCM cameras do by day and night); a person appears in each camera with
      probability 0.75 and in at least two cameras per modality.

    Every person has exactly ``images_per_camera`` images in each camera it appears in.

    Writing is safe against interruption and concurrency: the dataset is built in a temporary sibling folder
    (``.<name>.tmp-<pid>-<token>``) and renamed into place once complete, together with its ``.synthetic.json``
    marker (the parameters and the file count of every top-level entry, see :mod:`idkl_lib.data.marker`). Writers of
    the same root take turns under :func:`idkl_lib.utils.lock.folder_lock`, so a second process started at the same
    time waits, then finds the complete dataset and returns it. Calling again with the same parameters returns at
    once after recounting the files; a dataset that lost files is rebuilt (with a warning). The generator never
    writes into or below a folder that holds a real dataset, and never deletes files it did not write.

    Args:
        root: Output folder (created if needed). It must be new, empty, or written by this function.
        layout: ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        num_train_ids: Training identities.
        num_test_ids: Test identities; None gives ``num_train_ids`` for RegDB and ``num_train_ids // 2`` otherwise.
        images_per_camera: Images per person per camera; None gives 4 (SYSU, LLCM) or 10 (RegDB).
        height: Image height in pixels.
        width: Image width in pixels.
        seed: Seed of every random choice; the same arguments give byte-identical files.
        overwrite: Replace a synthetic dataset written with other parameters (never touches other data).
        modality_specific_evidence: Strength in [0, 1] of identity details that only one modality shows (colour
            patches in visible images, thermal marks in infrared ones; see :mod:`idkl_lib.data._synthetic_people`).
            0 (the default) writes exactly the dataset of earlier versions.
        lock_timeout: Seconds to wait for another process writing the same root (negative: as long as it runs).
        workers: Processes rendering the images (SYSU layout; the files are the same for any number).

    Returns:
        The absolute dataset root, ready for :func:`idkl_lib.data.build_dataset` with the same layout name.

    Raises:
        ValueError: unknown layout, out-of-range sizes, a different existing dataset without ``overwrite``, a
            non-empty folder that this function did not create, or a folder inside a real dataset.
        idkl_lib.utils.lock.FolderLockTimeout: another process kept writing the same root for ``lock_timeout``.
        TypeError: a size or the seed is not an int.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"write_synthetic: unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"write_synthetic: root must be a str or os.PathLike path, got {type(root).__name__}")
    if num_test_ids is None:
        num_test_ids = num_train_ids if layout == "regdb" else max(1, num_train_ids // 2)
    if images_per_camera is None:
        images_per_camera = DEFAULT_IMAGES_PER_CAMERA[layout]
    params: dict[str, object] = {
        "generator": "idkl_lib.data.synthetic",
        "version": GENERATOR_VERSION,
        "layout": layout,
        "num_train_ids": _check_int("num_train_ids", num_train_ids, 1),
        "num_test_ids": _check_int("num_test_ids", num_test_ids, 1),
        "images_per_camera": _check_int("images_per_camera", images_per_camera, 1),
        "height": _check_int("height", height, 16),
        "width": _check_int("width", width, 8),
        "seed": _check_int("seed", seed, 0),
    }
    if params["num_train_ids"] + params["num_test_ids"] >= RESERVED_PID_START:  # type: ignore[operator]
        raise ValueError(
            f"write_synthetic: {num_train_ids} + {num_test_ids} identities reach the identity numbers from "
            f"{RESERVED_PID_START} on, which are reserved for the pretraining population (idkl_lib.pretrain)"
        )
    evidence = modality_specific_evidence
    if isinstance(evidence, bool) or not isinstance(evidence, int | float) or not 0.0 <= evidence <= 1.0:
        raise ValueError(f"write_synthetic: modality_specific_evidence must be a number in [0, 1], got {evidence!r}")
    if evidence > 0:  # recorded only when used, so the markers of existing default datasets still match
        params["modality_specific_evidence"] = float(evidence)
    path = Path(root).expanduser().resolve()
    _refuse_real_dataset(path)
    if _reusable(path, params):
        return path
    with folder_lock(path, timeout=lock_timeout, purpose="written (a synthetic dataset)"):
        if _reusable(path, params):  # another process finished it while this one waited
            return path
        _build(path, params, _replaces_existing(path, params, overwrite), _check_int("workers", workers, 1))
    return path
