"""LLCM parser (Zhang & Wang, "Diverse Embedding Expansion Network and Low-Light Cross-Modality Benchmark
for Visible-Infrared Person Re-identification", CVPR 2023).

Release layout (docs/method.md#103-llcm)::

    <root>/vis/<ID>/<ID>_c<NN>_s<seq>_f<frame>_vis.jpg, <root>/nir/<ID>/<ID>_c<NN>_..._nir.jpg
    <root>/idx/{train,test}_{vis,nir}.txt     lines "<relative path> <label>"

Statistics of the release: 1,064 identities over 9 cameras (each camera records visible by day and near
infrared at night); 713 training and 351 test identities. Unlike the reference code, which collapses cameras
to 2 / 3, records keep the TRUE camera id ``NN`` from the file name, as the official protocol's same-camera
filtering needs (docs/method.md#55-llcm-protocol).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from ._common import (
    SkipReport,
    check_images_exist,
    check_training_modalities,
    identity_from_parent,
    read_index_file,
    relabel_map,
    require_file,
    require_nonempty_dir,
    resolve_root,
    sorted_samples,
    unlisted_files,
)
from .records import INFRARED, VISIBLE, Sample, VIDataset

DATASET = "LLCM"
_CAMERA = re.compile(r"_c(\d+)_")
_MODALITY_FOLDERS = {"vis": VISIBLE, "nir": INFRARED}


def camera_from_name(file_name: str) -> int:
    """The true camera id coded as ``_cNN_`` in an LLCM file name (``0351_c06_s200656_f4830_nir.jpg`` -> 6).

    Raises:
        ValueError: the name has no ``_cNN_`` code.
    """
    match = _CAMERA.search(file_name)
    if match is None:
        raise ValueError(
            f"{DATASET}: cannot read the camera id from file name {file_name!r}; "
            "expected '<ID>_c<NN>_..._<vis|nir>.jpg'"
        )
    return int(match.group(1))


def _read_list(root: Path, relative: str) -> list[Sample]:
    index_file = require_file(root, relative, DATASET, "lines '<relative path> <label>'")
    records: list[Sample] = []
    for rel, _label, line in read_index_file(index_file, DATASET):
        rel_path = PurePosixPath(rel)
        top = rel_path.parts[0]
        if top not in _MODALITY_FOLDERS:
            raise ValueError(f"{DATASET}: {index_file}:{line}: path {rel!r} must start with 'vis/' or 'nir/'")
        pid = identity_from_parent(rel, index_file, line, DATASET)
        try:
            camid = camera_from_name(rel_path.name)
        except ValueError as exc:
            raise ValueError(f"{index_file}:{line}: {exc}") from None
        records.append(Sample(str(root / rel), pid, camid, _MODALITY_FOLDERS[top]))
    check_images_exist(records, DATASET, str(index_file))
    return records


def parse_llcm(root: str | os.PathLike[str]) -> VIDataset:
    """Parse an LLCM release folder.

    Args:
        root: Folder holding ``vis/``, ``nir/`` and ``idx/``.

    Returns:
        A :class:`VIDataset` with ``train`` = ``idx/train_vis.txt`` + ``idx/train_nir.txt`` (pids relabelled
        ``0..N-1`` in sorted folder-id order, map in ``meta["train_id_map"]``), ``query`` = ``test_nir`` and
        ``gallery`` = ``test_vis`` (original ids). Every record's ``camid`` is the true camera from the file name;
        modality is infrared iff the path's top folder is ``nir``. Files in ``vis/``, ``nir/`` that no index file
        lists are named in one :class:`~idkl_lib.data._common.DatasetWarning` and listed in ``meta["skipped"]``.

    Raises:
        FileNotFoundError: the root, ``vis/``, ``nir/``, an index file or a listed image is missing.
        ValueError: a modality folder is empty, an index line or file name is malformed, or a training identity has
            images of only one modality.
    """
    root_path = resolve_root(root, DATASET, "vis/, nir/ and idx/ of the release")
    for folder in _MODALITY_FOLDERS:
        require_nonempty_dir(root_path, folder, DATASET, f"{folder}/<ID>/<ID>_c<NN>_..._{folder}.jpg images")

    train_raw = _read_list(root_path, "idx/train_vis.txt") + _read_list(root_path, "idx/train_nir.txt")
    gallery = _read_list(root_path, "idx/test_vis.txt")
    query = _read_list(root_path, "idx/test_nir.txt")
    check_training_modalities(train_raw, DATASET, "idx/train_vis.txt + idx/train_nir.txt")

    skipped = SkipReport(DATASET, root_path)
    listed = (s.path for s in (*train_raw, *gallery, *query))
    unlisted_files(root_path, _MODALITY_FOLDERS, listed, skipped, "idx/{train,test}_{vis,nir}.txt")
    id_map = relabel_map(s.pid for s in train_raw)
    train = [Sample(s.path, id_map[s.pid], s.camid, s.modality) for s in train_raw]
    return VIDataset(
        name="llcm",
        root=root_path,
        train=sorted_samples(train),
        query=sorted_samples(query),
        gallery=sorted_samples(gallery),
        num_train_ids=len(id_map),
        meta={"train_id_map": id_map, "skipped": skipped.finish()},
    )
