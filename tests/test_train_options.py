"""Training options added for real-scale runs: the sampler's identity choice and the decoded-image cache flag."""

from __future__ import annotations

import math

import pytest
import torch

from idkl_lib.config import TrainConfig
from idkl_lib.data import VIDataset
from idkl_lib.train.cli import build_arg_parser
from idkl_lib.train.loop import build_loader


def test_identity_choice_defaults_to_the_reference_and_reaches_the_sampler(sysu_dataset: VIDataset) -> None:
    assert TrainConfig().identity_choice == "uniform"
    args = vars(build_arg_parser().parse_args(["--identity-choice", "proportional"]))
    assert args["identity_choice"] == "proportional"
    cfg = TrainConfig(p=2, k=2, identity_choice="proportional", num_workers=0)
    assert build_loader(cfg, sysu_dataset, epoch=0).sampler.identity_choice == "proportional"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="identity_choice='random'"):
        TrainConfig(identity_choice="random")


def test_decoded_cache_option_trains_from_the_cache(sysu_root, sysu_dataset: VIDataset, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from idkl_lib.train.loop import train
    from tests.test_train import tiny_config

    cfg = tiny_config(sysu_root, tmp_path / "run", decoded_cache=True, epochs=1)
    images, *_ = next(iter(build_loader(cfg, sysu_dataset, epoch=0)))
    assert images.dtype == torch.uint8 and images.shape == (16, 3, 32, 32)
    assert (tmp_path / "run" / "decoded_cache" / "images.u8").stat().st_size == len(sysu_dataset.train) * 32 * 32 * 3
    result = train(cfg, dataset=sysu_dataset, progress=False)
    assert result.history and all(math.isfinite(v) for row in result.history for v in row.values())
    assert build_arg_parser().parse_args(["--decoded-cache", "true"]).decoded_cache is True
    with pytest.raises(ValueError, match="decoded_cache"):
        TrainConfig(decoded_cache=True, channel_augment=True)
