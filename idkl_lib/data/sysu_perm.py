"""Reading and writing SYSU-MM01's gallery-sampling table ``exp/rand_perm_cam.mat``.

The official file holds the MATLAB variable ``rand_perm_cam``: a 6x1 cell (one per camera) whose element
``[cam - 1][0]`` is a 1xN cell over person ids (index ``id - 1``, original 1-based SYSU ids); each entry is a
``(num_trials, n_images)`` array whose row ``t`` is a random permutation of the 1-based image numbers of that
person in that camera (``cam<c>/<id:04d>/<img:04d>.jpg``). Evaluation trial ``t`` with ``s`` shots takes the first
``s`` numbers of row ``t``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import scipy.io

_MAT_HEADER_BYTES = 116
PermTable = dict[tuple[int, int], np.ndarray]  # (camid, pid) -> (num_trials, n_images) int array, 1-based image numbers


def read_rand_perm_cam(path: str | os.PathLike[str]) -> PermTable:
    """Read ``rand_perm_cam.mat`` into ``{(camid, pid): (num_trials, n_images) int64 array}``.

    Persons with no images in a camera are left out of the result.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"SYSU-MM01 gallery-sampling file not found: {path}. It ships with the official dataset release "
            "(exp/rand_perm_cam.mat, the official evaluation split); copy the dataset's exp/ folder next to cam1..cam6."
        )
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise ValueError(f"cannot read {path} as a MATLAB file ({exc}); re-copy it from the SYSU-MM01 release") from exc
    if "rand_perm_cam" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path} has no variable 'rand_perm_cam' (found: {found}); re-copy it from the release")
    perm = mat["rand_perm_cam"]
    table: PermTable = {}
    for cam_index in range(perm.shape[0]):
        cam_perm = np.atleast_1d(perm[cam_index][0].squeeze())
        for id_index, entry in enumerate(cam_perm):
            arr = np.asarray(entry)
            if arr.size == 0:
                continue
            table[(cam_index + 1, id_index + 1)] = np.atleast_2d(arr).astype(np.int64)
    return table


def write_rand_perm_cam(path: str | os.PathLike[str], table: PermTable, num_cams: int = 6) -> Path:
    """Write ``table`` in the official ``rand_perm_cam.mat`` structure (readable by :func:`read_rand_perm_cam`
    and by the reference code's ``perm[cam - 1][0].squeeze()[id - 1][trial][:shots]`` indexing)."""
    from ..utils.io import atomic_write_bytes

    max_pid = max((pid for _, pid in table), default=0)
    outer = np.empty((num_cams, 1), dtype=object)
    for cam in range(1, num_cams + 1):
        inner = np.empty((1, max_pid), dtype=object)
        for pid in range(1, max_pid + 1):
            arr = table.get((cam, pid))
            inner[0, pid - 1] = np.zeros((0, 0)) if arr is None else np.atleast_2d(arr).astype(np.float64)
        outer[cam - 1, 0] = inner
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"rand_perm_cam": outer})
    # the 116-byte descriptive header holds the creation time; a fixed text makes the file reproducible
    header = b"MATLAB 5.0 MAT-file, Platform: any, written by idkl_lib".ljust(_MAT_HEADER_BYTES, b" ")
    return atomic_write_bytes(path, header + buffer.getvalue()[_MAT_HEADER_BYTES:])
