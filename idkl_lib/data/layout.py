"""Recognising the official dataset layouts on disk, so that nothing writes into a real dataset's folder.

:func:`detect_layout` looks only at folder and file names (a few ``stat`` calls, no listing of the images):

* SYSU-MM01: at least two of ``cam1``..``cam6`` with ``exp/``, all six camera folders, or ``exp/train_id.txt``;
* RegDB: ``Visible/`` and ``Thermal/``, or ``idx/train_visible_1.txt``;
* LLCM: ``vis/`` and ``nir/``, or ``idx/train_vis.txt``.

A folder written by :func:`idkl_lib.data.write_synthetic` has the same layout and a ``.synthetic.json`` marker;
:func:`find_real_dataset` tells them apart.
"""

from __future__ import annotations

import os
from pathlib import Path

from .marker import MARKER

DATASET_NAMES: dict[str, str] = {"sysu": "SYSU-MM01", "regdb": "RegDB", "llcm": "LLCM"}
_DESCRIPTIONS: dict[str, str] = {
    "sysu": "cam1..cam6/ and exp/",
    "regdb": "Visible/, Thermal/ and idx/",
    "llcm": "vis/, nir/ and idx/",
}


def detect_layout(root: str | os.PathLike[str]) -> str | None:
    """The dataset whose official layout ``root`` holds: ``"sysu"``, ``"regdb"``, ``"llcm"``, or None."""
    path = Path(root)
    if not path.is_dir():
        return None

    def is_dir(name: str) -> bool:
        return (path / name).is_dir()

    cameras = sum(is_dir(f"cam{c}") for c in range(1, 7))
    if (cameras >= 2 and is_dir("exp")) or cameras == 6 or (path / "exp" / "train_id.txt").is_file():
        return "sysu"
    if (is_dir("Visible") and is_dir("Thermal")) or (path / "idx" / "train_visible_1.txt").is_file():
        return "regdb"
    if (is_dir("vis") and is_dir("nir")) or (path / "idx" / "train_vis.txt").is_file():
        return "llcm"
    return None


def describe_layout(layout: str) -> str:
    """``"SYSU-MM01 (cam1..cam6/ and exp/)"``."""
    return f"{DATASET_NAMES[layout]} ({_DESCRIPTIONS[layout]})"


def find_real_dataset(path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """The nearest of ``path`` and its parent folders that holds a real dataset (an official layout without the
    synthetic generator's marker), as ``(folder, layout)``; None when there is none."""
    start = Path(path).expanduser().resolve()
    for folder in (start, *start.parents):
        layout = detect_layout(folder)
        if layout is not None and not (folder / MARKER).is_file():
            return folder, layout
    return None
