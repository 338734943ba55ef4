"""Shared fixtures: tiny synthetic datasets in the three official layouts, written once per test session.

Sizes (32 x 16 images): 12 training and 6 test identities; SYSU-MM01 3 images per person per camera (6 cameras),
RegDB 4 visible + 4 thermal per person (10 trials), LLCM 3 per camera (visible cams 1-4, near-infrared cams 3-6,
each person in a random subset of at least two per modality).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from idkl_lib.data import VIDataset, parse_llcm, parse_regdb, parse_sysu, write_synthetic

TINY = {"num_train_ids": 12, "num_test_ids": 6, "height": 32, "width": 16, "seed": 0}


@pytest.fixture(scope="session")
def sysu_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic SYSU-MM01 folder (cam1..cam6, exp/ with rand_perm_cam.mat)."""
    return write_synthetic(tmp_path_factory.mktemp("sysu"), layout="sysu", images_per_camera=3, **TINY)


@pytest.fixture(scope="session")
def regdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic RegDB folder (Visible/, Thermal/, idx/ for trials 1..10)."""
    return write_synthetic(tmp_path_factory.mktemp("regdb"), layout="regdb", images_per_camera=4, **TINY)


@pytest.fixture(scope="session")
def llcm_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic LLCM folder (vis/, nir/, idx/; true camera ids in the file names)."""
    return write_synthetic(tmp_path_factory.mktemp("llcm"), layout="llcm", images_per_camera=3, **TINY)


@pytest.fixture(scope="session")
def sysu_dataset(sysu_root: Path) -> VIDataset:
    """``parse_sysu(sysu_root)``."""
    return parse_sysu(sysu_root)


@pytest.fixture(scope="session")
def regdb_dataset(regdb_root: Path) -> VIDataset:
    """``parse_regdb(regdb_root, trial=1)``."""
    return parse_regdb(regdb_root, trial=1)


@pytest.fixture(scope="session")
def llcm_dataset(llcm_root: Path) -> VIDataset:
    """``parse_llcm(llcm_root)``."""
    return parse_llcm(llcm_root)
