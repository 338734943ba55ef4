"""Atomic writes: complete file or untouched file, normal permissions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from idkl_lib.utils.io import atomic_write, atomic_write_json


def test_atomic_write_json_round_trip_and_permissions(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "sub" / "metrics.json", {"R1": 12.5})
    assert json.loads(path.read_text()) == {"R1": 12.5}
    mode = stat.S_IMODE(os.stat(path).st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"ok": 1})

    def explode(fh):  # type: ignore[no-untyped-def]
        fh.write(b'{"half": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, explode)
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_non_finite_metrics_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "m.json", {"mAP": float("nan")})
    assert not (tmp_path / "m.json").exists()
