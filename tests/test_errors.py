"""User mistakes at the entry points a researcher actually calls (train(), evaluate_dataset(), build_dataset()).

Each module's own tests cover its errors in detail (test_datasets, test_checkpoint, test_rank, test_protocols,
test_train, test_pipeline, test_workbench); this file checks that the same clear messages reach the user through
the top-level calls, before any work is done.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from idkl_lib.config import TrainConfig
from idkl_lib.data import VIDataset, build_dataset
from idkl_lib.eval import evaluate_dataset
from idkl_lib.train.loop import train


def _tiny_config(root: Path, out: Path, **overrides: object) -> TrainConfig:
    base: dict[str, object] = dict(
        dataset="sysu", data_root=str(root), arch="resnet18", base_width=8, pretrained=False, height=32, width=32,
        p=2, k=2, epochs=1, num_workers=0, device="cpu", out_dir=str(out), final_eval=False,
    )  # fmt: skip
    base.update(overrides)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_p_larger_than_the_number_of_identities(sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path) -> None:
    cfg = _tiny_config(sysu_root, tmp_path, p=sysu_dataset.num_train_ids + 2)
    with pytest.raises(ValueError, match=r"p=\d+ exceeds the \d+ identities .*lower p"):
        train(cfg, dataset=sysu_dataset, progress=False)
    assert not (tmp_path / "checkpoint.pth").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_requested_without_a_gpu(sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path) -> None:
    cfg = _tiny_config(sysu_root, tmp_path, device="cuda")
    with pytest.raises(ValueError, match=r"device='cuda' but no CUDA GPU .*device"):
        train(cfg, dataset=sysu_dataset, progress=False)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"k": 5}, r"TrainConfig\.k=5: .*even"),
        ({"height": 100}, r"TrainConfig\.height=100: .*multiples of 16"),
        ({"loss_preset": "fancy"}, r"fancy.*(sysu|regdb)"),
        ({"loss_overrides": "tgsa=1"}, r"unknown loss term.*tgsa_inter"),
        ({"dataset": "market"}, r"TrainConfig\.dataset='market': must be one of sysu, regdb, llcm"),
        ({"regdb_trial": 11}, r"TrainConfig\.regdb_trial=11"),
    ],
)
def test_bad_training_parameters_fail_before_any_work(tmp_path: Path, overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _tiny_config(tmp_path / "nowhere", tmp_path / "out", **overrides)
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_name_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"llcm.*regdb.*sysu|sysu.*regdb.*llcm"):
        build_dataset("market1501", tmp_path)


def test_missing_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "SYSU")):
        build_dataset("sysu", tmp_path / "SYSU")


def test_evaluation_input_mistakes(sysu_dataset: VIDataset) -> None:
    q = np.random.default_rng(0).normal(size=(len(sysu_dataset.query), 8))
    g = np.random.default_rng(1).normal(size=(len(sysu_dataset.gallery), 8))
    with pytest.raises(ValueError, match=r"query_feats.*\d+.*\d+"):
        evaluate_dataset(sysu_dataset, q[:-1], g)
    bad = g.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"gallery_feats contains NaN or inf"):
        evaluate_dataset(sysu_dataset, q, bad)
    empty = VIDataset("sysu", sysu_dataset.root, sysu_dataset.train, (), sysu_dataset.gallery, 1, sysu_dataset.meta)
    with pytest.raises(ValueError, match=r"(?i)empty|no quer"):
        evaluate_dataset(empty, q[:0], g)


def test_refusals_show_as_their_message_in_a_notebook() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from idkl_lib.notebook.context import DataMismatchError
    from idkl_lib.notebook.params import ParameterError
    from idkl_lib.runs.guard import RunFolderError
    from idkl_lib.utils.errors import ShortMessage

    message = "02_train already holds the checkpoint of another run. " + "Train into a new folder. " * 12
    for kind in (RunFolderError, DataMismatchError, ParameterError):
        assert issubclass(kind, ShortMessage) and issubclass(kind, ValueError)  # callers still catch ValueError
        lines = kind(message)._render_traceback_()  # IPython's protocol: these lines instead of the traceback
        assert 2 <= len(lines) <= 4 and all(len(line) <= 130 for line in lines)
        assert lines[0].startswith(f"\x1b[0;31m{kind.__name__}\x1b[0m: 02_train already holds")
        assert " ".join(lines).replace(f"\x1b[0;31m{kind.__name__}\x1b[0m: ", "") == " ".join(message.split())
    shown: list[list[str]] = []
    shell = InteractiveShell()
    shell._showtraceback = lambda etype, evalue, stb: shown.append(stb)  # type: ignore[method-assign]
    shell.run_cell("from idkl_lib.runs.guard import RunFolderError\nraise RunFolderError('refused: another run')")
    assert shown == [["\x1b[0;31mRunFolderError\x1b[0m: refused: another run"]]
