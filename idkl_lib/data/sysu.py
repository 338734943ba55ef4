"""SYSU-MM01 parser (Wu et al., "RGB-Infrared Cross-Modality Person Re-Identification", ICCV 2017).

Official release layout (docs/method.md#101-sysu-mm01)::

    <root>/cam{1..6}/<ID:04d>/<img:04d>.jpg     cams 1, 2, 4, 5 visible; cams 3, 6 infrared
    <root>/exp/train_id.txt, val_id.txt, test_id.txt   comma-separated integer ids (one line)
    <root>/exp/rand_perm_cam.mat                 gallery sampling for the 10 evaluation trials

Statistics of the release: 491 identities; train = train ∪ val = 395 ids (22,258 visible + 11,909 infrared
images); test = 96 ids (3,803 infrared queries, 6,775 visible gallery images before sampling).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from ._common import (
    SkipReport,
    check_training_modalities,
    integer_subfolders,
    relabel_map,
    require_file,
    resolve_root,
    sorted_samples,
)
from .records import INFRARED, VISIBLE, Sample, VIDataset

DATASET = "SYSU-MM01"
CAMERAS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
INFRARED_CAMERAS: frozenset[int] = frozenset({3, 6})
GALLERY_CAMERAS: tuple[int, ...] = (1, 2, 4, 5)
QUERY_CAMERAS: tuple[int, ...] = (3, 6)


def read_id_list(path: Path, allow_empty: bool = False) -> list[int]:
    """Read a SYSU ``exp/*_id.txt`` file: integer ids separated by commas (the release: one line) or by line breaks
    and spaces (one id per line); every line is read.

    Raises:
        ValueError: a token is not an integer, an id is listed twice, or the list is empty and ``allow_empty`` is
            False.
    """
    ids: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for token in line.replace(",", " ").split():
            if not (token.isascii() and token.isdigit()):
                raise ValueError(
                    f"{DATASET}: {path}:{number}: expected integer ids separated by commas or line breaks, got "
                    f"{token!r}"
                )
            ids.append(int(token))
    repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
    if repeated:
        raise ValueError(f"{DATASET}: {path} lists ids {repeated} more than once; re-copy exp/ from the release.")
    if not ids and not allow_empty:
        raise ValueError(f"{DATASET}: {path} lists no identity ids; re-copy exp/ from the release.")
    return ids


def _scan_camera(root: Path, cam: int, wanted: set[int], skipped: SkipReport) -> list[Sample]:
    """Records of ``cam<cam>/<ID>/*.jpg`` for the ids in ``wanted`` (original ids kept); whatever else the camera
    folder holds is recorded in ``skipped``."""
    cam_dir = root / f"cam{cam}"
    if not cam_dir.is_dir():
        raise FileNotFoundError(
            f"{DATASET}: expected camera folder <root>/cam{cam} (layout cam1..cam6/<ID:04d>/<img:04d>.jpg) "
            f"but {cam_dir} does not exist."
        )
    modality = INFRARED if cam in INFRARED_CAMERAS else VISIBLE
    records: list[Sample] = []
    any_image = False
    for pid, id_dir in integer_subfolders(cam_dir, skipped):
        images = []
        for p in sorted(id_dir.iterdir()):
            if p.suffix.lower() == ".jpg" and p.is_file():
                images.append(p)
            else:
                skipped.add("entries of identity folders that are not .jpg images", p)
        any_image = any_image or bool(images)
        if pid in wanted:
            records.extend(Sample(str(p), pid, cam, modality) for p in images)
        elif images:
            skipped.add("identity folders listed in no split file (exp/*_id.txt)", id_dir)
    if not any_image:
        raise ValueError(
            f"{DATASET}: camera folder {cam_dir} contains no <ID:04d>/<img:04d>.jpg images; "
            "re-copy it from the release."
        )
    return records


def parse_sysu(root: str | os.PathLike[str]) -> VIDataset:
    """Parse a SYSU-MM01 release folder.

    The camera and identity folders are walked explicitly (no recursive glob). Everything left out (entries that
    are not integer identity folders or ``.jpg`` images, identity folders in no split, test identities without
    images) is named in one :class:`~idkl_lib.data._common.DatasetWarning` and listed in ``meta["skipped"]``
    (``{reason: {"count", "items"}}``); hidden entries are not reported.

    Args:
        root: Folder holding ``cam1``..``cam6`` and ``exp``.

    Returns:
        A :class:`VIDataset` with ``train`` = all six cameras of ``train_id ∪ val_id`` (pids relabelled
        ``0..N-1`` in sorted original-id order; the map is ``meta["train_id_map"]``), ``query`` = cams 3, 6 of
        the test ids and ``gallery`` = all images of cams 1, 2, 4, 5 of the test ids (the protocol subsamples it
        per trial). Test records keep original ids and true camera ids (the cam-3 -> cam-2 rule belongs to the
        protocol). ``meta["rand_perm_cam"]`` is the path of ``exp/rand_perm_cam.mat`` (read it with
        :func:`idkl_lib.data.sysu_perm.read_rand_perm_cam`).

    Raises:
        FileNotFoundError: the root, a camera folder, a split file or ``exp/rand_perm_cam.mat`` is missing.
        ValueError: a split file is malformed, train and test ids overlap, a camera folder holds no images, or a
            training identity has images of only one modality.
    """
    root_path = resolve_root(root, DATASET, "cam1..cam6/ and exp/ of the official release")
    train_file = require_file(root_path, "exp/train_id.txt", DATASET, "training ids, comma-separated")
    val_file = require_file(root_path, "exp/val_id.txt", DATASET, "validation ids, merged into training")
    test_file = require_file(root_path, "exp/test_id.txt", DATASET, "test ids")
    perm_file = root_path / "exp" / "rand_perm_cam.mat"
    if not perm_file.is_file():
        raise FileNotFoundError(
            f"{DATASET}: expected <root>/exp/rand_perm_cam.mat (the official evaluation split: gallery sampling for "
            f"the 10 trials) but {perm_file} does not exist. It comes with the official release's exp/ folder; copy "
            "that folder next to cam1..cam6."
        )

    train_ids = set(read_id_list(train_file)) | set(read_id_list(val_file, allow_empty=True))
    test_ids = set(read_id_list(test_file))
    overlap = sorted(train_ids & test_ids)
    if overlap:
        raise ValueError(
            f"{DATASET}: ids {overlap} are listed both in exp/train_id.txt ∪ exp/val_id.txt and exp/test_id.txt; "
            "the splits must be disjoint."
        )

    train_raw: list[Sample] = []
    query: list[Sample] = []
    gallery: list[Sample] = []
    skipped = SkipReport(DATASET, root_path)
    for cam in CAMERAS:
        records = _scan_camera(root_path, cam, train_ids | test_ids, skipped)
        train_raw.extend(s for s in records if s.pid in train_ids)
        (query if cam in QUERY_CAMERAS else gallery).extend(s for s in records if s.pid in test_ids)

    missing = sorted(train_ids - {s.pid for s in train_raw})
    if missing:
        raise ValueError(
            f"{DATASET}: training identities {missing} (from exp/train_id.txt, exp/val_id.txt) have no images in "
            "cam1..cam6; fix the split files or restore the images."
        )
    check_training_modalities(train_raw, DATASET, "exp/train_id.txt ∪ exp/val_id.txt")
    absent = test_ids - {s.pid for s in query + gallery}
    for ids, reason in (
        (absent, "test identities of exp/test_id.txt with no images"),
        (test_ids - absent - {s.pid for s in query}, "test identities of exp/test_id.txt with no infrared images"),
        (test_ids - absent - {s.pid for s in gallery}, "test identities of exp/test_id.txt with no visible images"),
    ):
        for pid in sorted(ids):
            skipped.add(reason, str(pid))
    id_map = relabel_map(train_ids)
    train = [Sample(s.path, id_map[s.pid], s.camid, s.modality) for s in train_raw]
    return VIDataset(
        name="sysu",
        root=root_path,
        train=sorted_samples(train),
        query=sorted_samples(query),
        gallery=sorted_samples(gallery),
        num_train_ids=len(id_map),
        meta={"train_id_map": id_map, "rand_perm_cam": str(perm_file), "skipped": skipped.finish()},
    )
