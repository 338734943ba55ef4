"""RegDB parser (Nguyen et al., "Person Recognition System Based on a Combination of Body Images from Visible
Light and Thermal Cameras", Sensors 2017).

Standard release layout (docs/method.md#102-regdb)::

    <root>/Visible/<ID>/<file>.bmp, <root>/Thermal/<ID>/<file>.bmp
    <root>/idx/{train,test}_{visible,thermal}_{trial}.txt     lines "<relative path> <label>", trial 1..10

Statistics of the release: 412 identities, 10 visible + 10 thermal images each; every trial splits the
identities at random into 206 training and 206 test identities. The identity is the image's parent folder
(the label column is ignored); camera id 2 = visible, 3 = thermal, so same-camera filtering never removes
anything.
"""

from __future__ import annotations

import os
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

DATASET = "RegDB"
NUM_TRIALS = 10
VISIBLE_CAMID = 2
THERMAL_CAMID = 3
_FOLDERS = {"Visible": (VISIBLE_CAMID, VISIBLE), "Thermal": (THERMAL_CAMID, INFRARED)}


def _read_list(root: Path, relative: str) -> list[Sample]:
    index_file = require_file(root, relative, DATASET, "lines '<relative path> <label>'")
    records: list[Sample] = []
    for rel, _label, line in read_index_file(index_file, DATASET):
        top = PurePosixPath(rel).parts[0]
        if top not in _FOLDERS:
            raise ValueError(f"{DATASET}: {index_file}:{line}: path {rel!r} must start with 'Visible/' or 'Thermal/'")
        camid, modality = _FOLDERS[top]
        pid = identity_from_parent(rel, index_file, line, DATASET)
        records.append(Sample(str(root / rel), pid, camid, modality))
    check_images_exist(records, DATASET, str(index_file))
    return records


def parse_regdb(root: str | os.PathLike[str], trial: int = 1) -> VIDataset:
    """Parse a RegDB release folder for one of its ten train/test trials.

    Args:
        root: Folder holding ``Visible/``, ``Thermal/`` and ``idx/``.
        trial: Split number, 1..10 (the reference code only ever uses 1; the standard protocol averages all ten).

    Returns:
        A :class:`VIDataset` with ``train`` = visible + thermal images of ``train_*_{trial}.txt`` (pids relabelled
        ``0..N-1`` in sorted folder-id order, map in ``meta["train_id_map"]``), ``query`` = test thermal and
        ``gallery`` = test visible (original folder ids). ``meta["trial"]`` is the trial.

    Files in the modality folders that no index file of the split lists (a stray ``.png``, a copy) are named in one
    :class:`~idkl_lib.data._common.DatasetWarning` and listed in ``meta["skipped"]``.

    Raises:
        TypeError / ValueError: ``trial`` is not an integer in 1..10.
        FileNotFoundError: the root, ``Visible/``, ``Thermal/``, an index file or a listed image is missing.
        ValueError: a modality folder is empty, an index line is malformed, or a training identity has images of
            only one modality.
    """
    if isinstance(trial, bool) or not isinstance(trial, int):
        raise TypeError(f"{DATASET}: trial must be an int in 1..{NUM_TRIALS}, got {trial!r}")
    if not 1 <= trial <= NUM_TRIALS:
        raise ValueError(f"{DATASET}: trial must be in 1..{NUM_TRIALS} (the release's idx/*_<trial>.txt), got {trial}")
    root_path = resolve_root(root, DATASET, "Visible/, Thermal/ and idx/ of the standard release")
    for folder in _FOLDERS:
        require_nonempty_dir(root_path, folder, DATASET, f"{folder}/<ID>/<file>.bmp images")

    train_raw = _read_list(root_path, f"idx/train_visible_{trial}.txt") + _read_list(
        root_path, f"idx/train_thermal_{trial}.txt"
    )
    gallery = _read_list(root_path, f"idx/test_visible_{trial}.txt")
    query = _read_list(root_path, f"idx/test_thermal_{trial}.txt")
    check_training_modalities(train_raw, DATASET, f"idx/train_{{visible,thermal}}_{trial}.txt")

    skipped = SkipReport(DATASET, root_path)
    listed = (s.path for s in (*train_raw, *gallery, *query))
    unlisted_files(root_path, _FOLDERS, listed, skipped, f"idx/{{train,test}}_{{visible,thermal}}_{trial}.txt")
    id_map = relabel_map(s.pid for s in train_raw)
    train = [Sample(s.path, id_map[s.pid], s.camid, s.modality) for s in train_raw]
    return VIDataset(
        name="regdb",
        root=root_path,
        train=sorted_samples(train),
        query=sorted_samples(query),
        gallery=sorted_samples(gallery),
        num_train_ids=len(id_map),
        meta={"trial": trial, "train_id_map": id_map, "skipped": skipped.finish()},
    )
