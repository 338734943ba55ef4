"""The term analysis of the ablation study: gradients per term against autograd of the summed loss, the feature
scale against a hand-computed case, and one run on a trained checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from idkl_lib.config import LossWeights
from idkl_lib.experiments.term_analysis import analyse_checkpoint, feature_scale, main, term_gradients
from idkl_lib.train.loop import train
from tests.test_train import tiny_config


def _toy_terms(scale_b: float = 1.0) -> tuple[dict[str, torch.Tensor], list[torch.nn.Parameter]]:
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    v = torch.nn.Parameter(torch.randn(3))
    terms = {
        "id": (w**2).sum(),
        "tri_sh": (w[:3] * v).sum().abs(),
        "tgsa_inter": scale_b * ((w[:3] - v) ** 2).sum(),
    }
    return terms, [w, v]


def test_term_gradients_add_up_to_the_gradient_of_the_summed_loss() -> None:
    terms, params = _toy_terms()
    rows = {r.name: r for r in term_gradients(terms, params)}
    total = torch.autograd.grad(sum(terms.values()), params, retain_graph=True)
    total_norm = float(torch.cat([g.reshape(-1) for g in total]).norm())
    core = torch.autograd.grad(terms["id"] + terms["tri_sh"], params)
    core_flat = torch.cat([g.reshape(-1) for g in core])
    assert rows["total"].grad_norm == pytest.approx(total_norm, rel=1e-6)
    assert rows["core"].grad_norm == pytest.approx(float(core_flat.norm()), rel=1e-6)
    assert rows["core"].share == pytest.approx(1.0) and rows["core"].cosine == pytest.approx(1.0)
    fresh_terms, fresh_params = _toy_terms()  # a fresh graph with the same values
    g_b = torch.autograd.grad(fresh_terms["tgsa_inter"], fresh_params)
    assert rows["tgsa_inter"].value == pytest.approx(float(terms["tgsa_inter"].detach()))
    assert rows["tgsa_inter"].share == pytest.approx(
        float(torch.cat([g.reshape(-1) for g in g_b]).norm()) / float(core_flat.norm()), rel=1e-6
    )


def test_doubling_a_term_doubles_its_share_and_keeps_its_direction() -> None:
    one = {r.name: r for r in term_gradients(*_toy_terms(1.0))}
    two = {r.name: r for r in term_gradients(*_toy_terms(2.0))}
    assert two["tgsa_inter"].share == pytest.approx(2 * one["tgsa_inter"].share, rel=1e-6)
    assert two["tgsa_inter"].cosine == pytest.approx(one["tgsa_inter"].cosine, abs=1e-6)
    assert -1.0 <= one["tgsa_inter"].cosine <= 1.0


def test_term_gradients_needs_a_core_term() -> None:
    terms, params = _toy_terms()
    with pytest.raises(ValueError, match="identity or triplet"):
        term_gradients({"tgsa_inter": terms["tgsa_inter"]}, params)


def test_feature_scale_by_hand() -> None:
    feat = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])  # distances 5, 10, 5
    out = feature_scale(feat, 2 * feat)
    assert out["norm_sh"] == pytest.approx((0 + 5 + 10) / 3)
    assert out["norm_sp"] == pytest.approx(2 * (0 + 5 + 10) / 3)
    assert out["distance_sh"] == pytest.approx((5 + 10 + 5 + 5 + 10 + 5) / 6)

    def h(a: float, b: float) -> float:  # entropy of softmax([a, b]) over log 2
        p = 1 / (1 + math.exp(b - a))
        return -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)

    assert out["tgsa_entropy"] == pytest.approx((h(5, 10) + h(5, 5) + h(10, 5)) / 3, rel=1e-5)


def test_analyse_checkpoint_and_cli(sysu_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cell = tmp_path / "sweep" / "loss_preset-baseline"
    cfg = tiny_config(sysu_root, cell / "02_train", epochs=1, loss_preset="baseline")
    train(cfg)
    ckpt = cell / "02_train" / "checkpoint.pth"
    result = analyse_checkpoint(ckpt, "full@small_batch", batches=1)
    assert result["batches"] == 1 and result["epoch"] == 1
    assert result["active"] == ["id", "id_sp", "tri_sh", "tri_sp"]
    measured = set(result["terms"]) - {"core", "total"}
    full = LossWeights.preset("full@small_batch")
    assert measured == {n for n in LossWeights.names() if getattr(full, n) > 0}
    assert all(math.isfinite(v["share"]) and v["grad_norm"] >= 0 for v in result["terms"].values())
    assert result["features"]["norm_sh"] > 0 and 0 < result["features"]["tgsa_entropy"] <= 1
    start = analyse_checkpoint(ckpt, "full@small_batch", batches=1, untrained=True)
    assert start["epoch"] == 0 and start["terms"]["core"]["value"] != result["terms"]["core"]["value"]
    assert main(["--sweep-dir", str(tmp_path / "sweep"), "--batches", "1", "--at-start"]) == 0
    written = json.loads((tmp_path / "sweep" / "term_analysis.json").read_text())
    assert written["cells"][0]["start"]["epoch"] == 0 and written["cells"][0]["epoch"] == 1
    assert "loss_preset-baseline" in capsys.readouterr().out
