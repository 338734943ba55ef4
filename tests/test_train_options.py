"""Training options added for real-scale runs: the sampler's identity choice and the decoded-image cache flag."""

from __future__ import annotations

import pytest

from idkl_lib.config import TrainConfig
from idkl_lib.data import VIDataset
from idkl_lib.train import build_arg_parser, build_loader


def test_identity_choice_defaults_to_the_reference_and_reaches_the_sampler(sysu_dataset: VIDataset) -> None:
    assert TrainConfig().identity_choice == "uniform"
    args = vars(build_arg_parser().parse_args(["--identity-choice", "proportional"]))
    assert args["identity_choice"] == "proportional"
    cfg = TrainConfig(p=2, k=2, identity_choice="proportional", num_workers=0)
    assert build_loader(cfg, sysu_dataset, epoch=0).sampler.identity_choice == "proportional"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="identity_choice='random'"):
        TrainConfig(identity_choice="random")
