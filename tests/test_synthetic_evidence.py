"""The synthetic generator's ``modality_specific_evidence`` knob: level 0 leaves the dataset byte-identical to the
generator before the knob existed; a positive level adds identity details that only one modality shows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from idkl_lib.data._synthetic_people import _LUMA, _make_evidence
from idkl_lib.data._synthetic_render import _Writer
from idkl_lib.data.synthetic import write_synthetic
from idkl_lib.workbench import ParameterError, prepare_dataset, synthetic_root

# sha256 of the rendered arrays below, computed with the generator before the knob was added (commit 039586e)
RENDER_HASH_BEFORE_KNOB = "90cdc32d9c9e2f3fa2a315bc2f6263b0dfd82045f3bbb71e0334818eb0a462f3"


def _render_hash(writer: _Writer) -> str:
    digest = hashlib.sha256()
    for pid in (1, 2, 3):
        for cam, infrared in ((1, False), (3, True)):
            images, back = writer.render(pid, cam, infrared, 2)
            digest.update(images.tobytes())
            digest.update(back.tobytes())
    return digest.hexdigest()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_level_zero_renders_what_the_generator_rendered_before() -> None:
    assert _render_hash(_Writer(5, 64, 32)) == RENDER_HASH_BEFORE_KNOB
    assert _render_hash(_Writer(5, 64, 32, 0.0)) == RENDER_HASH_BEFORE_KNOB


def test_level_zero_writes_the_same_files_and_marker(tmp_path: Path) -> None:
    kw = {"layout": "sysu", "num_train_ids": 4, "images_per_camera": 2, "height": 64, "width": 32, "seed": 3}
    default = write_synthetic(tmp_path / "a", **kw)
    explicit = write_synthetic(tmp_path / "b", modality_specific_evidence=0.0, **kw)
    assert _tree(default) == _tree(explicit)
    assert "modality_specific_evidence" not in (default / ".synthetic.json").read_text()


def test_positive_level_adds_details_in_each_modality_only_where_drawn() -> None:
    plain, rich = _Writer(0, 128, 64), _Writer(0, 128, 64, 1.0)
    for pid in (1, 2):
        for cam, infrared in ((1, False), (3, True)):
            a, _ = plain.render(pid, cam, infrared, 2)
            b, _ = rich.render(pid, cam, infrared, 2)
            changed = np.abs(a.astype(int) - b.astype(int)) > 8
            changed = changed.any(axis=-1) if changed.ndim == 4 else changed
            assert 0.002 < changed.mean() < 0.15, (pid, cam, changed.mean())  # local details, same jitter and noise


def test_visible_details_keep_the_garment_luminance_and_differ_between_identities() -> None:
    writer = _Writer(0, 128, 64)
    first, second = (_make_evidence(0, pid, writer.identity(pid)) for pid in (1, 2))
    ident = writer.identity(1)
    assert float(first.chest_rgb @ _LUMA) == pytest.approx(float(ident.upper.rgb_a @ _LUMA), abs=0.02)
    assert float(first.lower_rgb @ _LUMA) == pytest.approx(float(ident.lower.rgb_a @ _LUMA), abs=0.02)
    assert not np.allclose(first.chest_rgb, second.chest_rgb) and first.band != second.band


def test_level_is_validated_and_gets_its_own_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modality_specific_evidence must be a number in \\[0, 1\\], got 1.5"):
        write_synthetic(tmp_path / "x", num_train_ids=4, modality_specific_evidence=1.5)
    with pytest.raises(ParameterError, match="synthetic_modality_evidence=-0.1"):
        prepare_dataset("synthetic", tmp_path, synthetic_ids=4, synthetic_modality_evidence=-0.1)
    assert synthetic_root(tmp_path, "sysu", 4, 2) != synthetic_root(tmp_path, "sysu", 4, 2, 0.5)
    assert synthetic_root(tmp_path, "sysu", 4, 2, 0.0) == synthetic_root(tmp_path, "sysu", 4, 2)
