"""The completion marker of a synthetic dataset, ``<root>/.synthetic.json``.

:func:`idkl_lib.data.write_synthetic` writes the marker only once the dataset is complete, with the generator's
parameters and ``counts``: the number of files under each top-level entry it wrote (``{"cam1": 72, "exp": 4}``).
:func:`check_marker` recounts them; every parser calls it, so a dataset that lost or gained files since it was
written (an interrupted copy, a clean-up by hand) is reported instead of silently parsed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MARKER = ".synthetic.json"


def _walk_count(folder: Path) -> int:
    total = 0
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .ipynb_checkpoints and the like are not data
        total += sum(not f.startswith(".") for f in files)
    return total


def count_files(root: Path, entries: list[str] | None = None) -> dict[str, int]:
    """Number of non-hidden files under each top-level entry of ``root`` (all non-hidden entries when ``entries``
    is None); a missing entry counts 0, a plain file counts 1."""
    if entries is None:
        entries = sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
    return {
        name: _walk_count(root / name) if (root / name).is_dir() else int((root / name).is_file()) for name in entries
    }


def read_marker(root: Path) -> dict[str, Any] | None:
    """The marker's content, None when there is no marker, ``{}`` when it cannot be read."""
    marker = root / MARKER
    if not marker.is_file():
        return None
    try:
        content = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def count_mismatches(root: Path, marker: dict[str, Any]) -> list[str]:
    """``"cam1: 70 files, the marker records 72"`` for every entry whose file count differs from the marker's;
    ``["the marker records no file counts"]`` when it has none."""
    expected = marker.get("counts")
    if not isinstance(expected, dict) or not expected:
        return ["the marker records no file counts"]
    found = count_files(root, sorted(expected))
    return [f"{name}: {found[name]} files, the marker records {n}" for name, n in expected.items() if found[name] != n]


def check_marker(root: Path, dataset: str) -> None:
    """Raise ValueError when ``root`` holds a synthetic dataset that is incomplete or whose files changed since it
    was written; do nothing for a folder without a marker (a real dataset).

    Args:
        root: The dataset folder.
        dataset: Dataset name used in messages.
    """
    marker = read_marker(root)
    if marker is None:
        return
    rebuild = (
        "call idkl_lib.data.write_synthetic (or workbench.prepare_dataset) with the same parameters again: it rebuilds "
        "it"
    )
    if marker.get("complete") is not True:
        raise ValueError(
            f"{dataset}: {root} holds an incomplete synthetic dataset ({MARKER} is not marked complete: its writer is "
            f"still running or was interrupted); {rebuild}."
        )
    problems = count_mismatches(root, marker)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} entries)" if len(problems) > 5 else "")
        raise ValueError(
            f"{dataset}: the synthetic dataset at {root} does not match its {MARKER} ({shown}): files were lost or "
            f"added since it was written; {rebuild}."
        )
