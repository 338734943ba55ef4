"""The pretrained start (idkl_lib.pretrain): a population disjoint from every split, weights that pretrained=PATH
loads, the per-machine cache, and the refusals."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from idkl_lib.config import ModelConfig
from idkl_lib.data._synthetic_people import _make_identity
from idkl_lib.data.synthetic import RESERVED_PID_START, write_synthetic
from idkl_lib.models import build_model
from idkl_lib.pretrain import (
    PRETRAIN_CAMERAS,
    PretrainConfig,
    check_disjoint,
    ensure_pretrained,
    pretrained_start,
    read_record,
    render_population,
)
from idkl_lib.pretrain.cli import main as pretrain_main

TINY = {"arch": "resnet18", "base_width": 4, "height": 32, "width": 16, "num_ids": 4, "images_per_id": 4}
TINY_RUN = {**TINY, "epochs": 1, "batch_size": 8}


def _looks(seed: int, pid: int) -> tuple[float, ...]:
    ident = _make_identity(seed, pid)
    return (ident.head_r, ident.torso_len, ident.shoulder, ident.leg_r, ident.arm_r, ident.hem)


def test_population_ids_and_cameras_are_outside_every_split(tmp_path: Path) -> None:
    population = render_population(0, RESERVED_PID_START, 6, 5, 32, 16)
    assert min(population.pids) == RESERVED_PID_START and len(set(population.pids)) == 6
    assert population.images.shape == (30, 32, 16, 3) and population.images.dtype == np.uint8
    assert np.bincount(population.labels).tolist() == [5] * 6
    root = write_synthetic(tmp_path / "ds", num_train_ids=8, num_test_ids=4, images_per_camera=1, height=32, width=16)
    files = [root / "exp" / f"{name}_id.txt" for name in ("train", "val", "test")]
    split = {int(v) for f in files for v in f.read_text().split(",")}
    assert split == set(range(1, 13)) and not split & set(population.pids)
    assert min(PRETRAIN_CAMERAS) > 9  # no layout's camera: the scenes are new too
    # identity appearance comes from (seed, pid): no pretraining person looks like a split person, for any seed used
    split_looks = {_looks(seed, pid) for seed in (0, 1) for pid in split}
    assert not split_looks & {_looks(seed, pid) for seed in (0, 1) for pid in population.pids}


def test_overlapping_population_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overlap the split identities"):
        check_disjoint(1, 10)
    with pytest.raises(ValueError, match="overlap"):
        PretrainConfig(**TINY, first_pid=RESERVED_PID_START - 2)
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint(RESERVED_PID_START, 10, split_ids=RESERVED_PID_START + 5)
    with pytest.raises(ValueError, match="reserved for the pretraining population"):
        write_synthetic(tmp_path / "big", num_train_ids=RESERVED_PID_START - 10, num_test_ids=10)
    assert not (tmp_path / "big").exists()
    assert pretrain_main(["--first-pid", "5", "--ids", "4", "--cache-dir", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()


def test_weights_load_with_pretrained_path_into_both_tails(tmp_path: Path) -> None:
    path = ensure_pretrained(PretrainConfig(**TINY_RUN), tmp_path, log=lambda _: None)
    state = torch.load(path, weights_only=True)
    assert "layer3.0.conv1.weight" in state and not any(k.startswith(("shared_tail", "specific_tail")) for k in state)
    model = build_model(ModelConfig(num_classes=3, arch="resnet18", base_width=4, pretrained=str(path)))
    backbone = model.backbone
    assert torch.equal(backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(backbone.layer2[0].bn1.running_mean, state["layer2.0.bn1.running_mean"])
    for tail in (backbone.shared_tail, backbone.specific_tail):
        assert torch.equal(tail.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    fresh = build_model(ModelConfig(num_classes=3, arch="resnet18", base_width=4, pretrained=False))
    assert not torch.equal(fresh.backbone.conv1.weight, backbone.conv1.weight)
    record = read_record(path)
    assert record is not None and "CPU stand-in for ImageNet" in record["what"] and record["seconds"] >= 0
    assert record["identities"] == [RESERVED_PID_START, RESERVED_PID_START + 3]


def test_file_of_another_width_or_arch_names_both_shapes(tmp_path: Path) -> None:
    path = ensure_pretrained(PretrainConfig(**TINY_RUN), tmp_path, log=lambda _: None)
    with pytest.raises(RuntimeError, match=r"width 8 \(conv1.weight \(8, 3, 7, 7\)\).*\(4, 3, 7, 7\) \(width 4\)"):
        build_model(ModelConfig(num_classes=3, arch="resnet18", base_width=8, pretrained=str(path)))
    with pytest.raises(RuntimeError, match="resnet50 backbone"):
        build_model(ModelConfig(num_classes=3, arch="resnet50", base_width=4, pretrained=str(path)))
    with pytest.raises(ValueError, match="narrow network"):  # the ImageNet download exists at width 64 only
        ModelConfig(num_classes=3, base_width=8, pretrained=True)


def test_cache_is_reused_then_rebuilt_once_for_another_generator_version(tmp_path: Path) -> None:
    cfg = PretrainConfig(**TINY_RUN)
    lines: list[str] = []
    path = ensure_pretrained(cfg, tmp_path, log=lines.append)
    made = path.stat().st_mtime_ns
    assert any("wrote" in line for line in lines)
    lines.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reuse says nothing alarming
        assert ensure_pretrained(cfg, tmp_path, log=lines.append) == path
    assert path.stat().st_mtime_ns == made and any("reusing" in line for line in lines)
    # another configuration is another file
    other = ensure_pretrained(PretrainConfig(**{**TINY_RUN, "num_ids": 5}), tmp_path, log=lambda _: None)
    assert other != path and len(list(tmp_path.glob("*.pth"))) == 2
    # a file made by another generator version: rebuilt, said once
    record_path = path.with_suffix(".json")
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "generator_version": record["generator_version"] - 1}))
    with pytest.warns(UserWarning, match="generator version") as caught:
        ensure_pretrained(cfg, tmp_path, log=lambda _: None)
    assert len([w for w in caught if "rebuilding" in str(w.message)]) == 1
    assert read_record(path)["generator_version"] == record["generator_version"]  # type: ignore[index]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ensure_pretrained(cfg, tmp_path, log=lambda _: None)


def test_recipe_helper_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = {"arch": "resnet18", "base_width": 4, "height": 32, "width": 16, "pretrained": False}
    with pytest.raises(ValueError, match="names other weights"):
        pretrained_start({**recipe, "pretrained": True}, num_ids=4, epochs=1, cache_dir=tmp_path)
    args = ["--base-width", "4", "--height", "32", "--width", "16", "--ids", "4", "--images-per-id", "4"]
    assert pretrain_main([*args, "--epochs", "1", "--batch-size", "8", "--cache-dir", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert Path(printed).is_file() and Path(printed).parent == tmp_path


def test_report_first_screen_names_the_start(tmp_path: Path) -> None:
    from idkl_lib.report.summary import parameter_line

    path = ensure_pretrained(PretrainConfig(**TINY_RUN), tmp_path, log=lambda _: None)
    other = tmp_path / "other.pth"
    other.write_bytes(path.read_bytes())

    def line(pretrained: object) -> str:
        config = {"arch": "resnet18", "pretrained": pretrained}
        return parameter_line({}, {}, {"02_train": {"train_config": config}})

    assert line(str(path)) == "arch resnet18 (synthetic pretraining, the CPU stand-in for ImageNet)"
    assert line(True) == "arch resnet18 (ImageNet)" and line(False) == "arch resnet18"
    assert line(str(other)) == "arch resnet18 (pretrained: other.pth)"


def test_report_first_screen_says_what_a_synthetic_run_shows(tmp_path: Path) -> None:
    from idkl_lib.report.summary import SYNTHETIC_NOTE, render_summary

    protocols = {"sysu/all-search/single-shot": {"R1": 60.0, "mAP": 55.0, "mINP": 40.0, "num_queries": 384}}
    metrics = {
        "02_train": {"train_config": {"dataset": "sysu"}, "eval": protocols},
        "02_train_baseline": {"eval": protocols},
    }
    real = render_summary(tmp_path, {}, {}, metrics)
    synthetic = render_summary(tmp_path, {}, {}, {**metrics, "01_data_exploration": {"dataset": "synthetic"}})
    assert "IDKL vs baseline" in real and "not an effect of IDKL" not in real
    assert "not an effect of IDKL" in synthetic and "docs/results.md" in SYNTHETIC_NOTE
