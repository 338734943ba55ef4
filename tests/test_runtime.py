"""Tests for idkl_lib.utils.runtime: device resolution, seeding and the environment record."""

# ruff: noqa: NPY002 - these tests exercise numpy's legacy global generator on purpose

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from idkl_lib.utils.runtime import environment_info, git_state, resolve_device, seed_everything, seed_worker

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_torch_flags() -> Iterator[None]:
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark, cudnn_det = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = benchmark, cudnn_det


def test_resolve_device_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device='cuda' but no CUDA GPU.*set the parameter device to 'cpu' or 'auto'"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=r"device='gpu' is not a device: use 'auto', 'cpu', 'cuda'"):
        resolve_device("gpu")
    with pytest.raises(ValueError, match="the CPU has no index"):
        resolve_device("cpu:1")


def test_resolve_device_with_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"has 2 CUDA device\(s\): cuda:0..cuda:1"):
        resolve_device("cuda:2")


def test_seed_everything_repeats_numbers_and_sets_flags(restore_torch_flags: None) -> None:
    def draw() -> tuple[float, float, list[float]]:
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(6)
    assert draw() != first

    seed_everything(5, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert draw() == first
    seed_everything(5, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    for bad in (-1, 2**32, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed must be an integer"):
            seed_everything(bad)  # type: ignore[arg-type]


class _RandomDraws(Dataset[tuple[float, float]]):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> tuple[float, float]:
        return random.random(), float(np.random.rand())


def test_seed_worker_gives_distinct_repeatable_worker_streams() -> None:
    def run() -> list[tuple[float, float]]:
        loader = DataLoader(
            _RandomDraws(),
            batch_size=None,
            num_workers=2,
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(11),
            multiprocessing_context="fork",
        )
        return [(float(a), float(b)) for a, b in loader]

    first = run()
    assert first == run()
    # items 0 and 1 come from different workers: their streams must differ
    assert first[0] != first[1]


def test_environment_info_is_json_and_records_git(tmp_path: Path) -> None:
    info = environment_info(device="cpu", repo_dir=tmp_path)
    json.dumps(info)
    for key in ("idkl_lib_version", "python", "torch", "torchvision", "numpy", "hostname", "gpus", "time"):
        assert info[key] is not None
    assert info["device"] == "cpu" and info["git_commit"] is None and info["git_dirty"] is None
    assert environment_info(device="tpu")["device"].startswith("unavailable: device='tpu'")

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("the repository's git metadata is not available")
    state = git_state(REPO)
    assert re.fullmatch(r"[0-9a-f]{40}", state["git_commit"]) and isinstance(state["git_dirty"], bool)
