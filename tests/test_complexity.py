"""Model complexity (idkl_lib.models.complexity): the FLOP counter against hand counts and the analytic figures of
docs/method.md#27-compute-cost."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from idkl_lib.models import IDKLModel
from idkl_lib.models.complexity import Complexity, count_flops, count_parameters, model_complexity, used_parameters

# docs/method.md#27-compute-cost: ResNet-50 layout at 384x144, multiply-adds per image (forward)
ANALYTIC_GMAC_RETRIEVAL_384x144 = 6.84
ANALYTIC_GMAC_TWO_TAILS_384x144 = 11.68


def test_flop_counter_equals_a_hand_count_on_a_tiny_network() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    x = torch.randn(1, 3, 8, 8)
    conv_macs = (8 * 8) * 4 * (3 * 3 * 3)  # output positions x output channels x kernel volume
    linear_macs = 4 * 8 * 8 * 5
    assert count_flops(lambda: net(x)) == 2 * (conv_macs + linear_macs) == 16384
    assert count_parameters(net) == (4 * 3 * 3 * 3 + 4) + (256 * 5 + 5)
    head_only = used_parameters(net, lambda: net[3](torch.randn(1, 256)))  # only the linear layer is reached
    assert head_only == 256 * 5 + 5


def test_idkl_complexity_counts_the_retrieval_path_and_the_training_graph() -> None:
    model = IDKLModel(num_classes=10, arch="resnet18", base_width=8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    c = model_complexity(model, 32, 16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    assert c.params_total == sum(p.numel() for p in model.parameters())
    tail = sum(p.numel() for p in model.backbone.shared_tail.parameters())
    assert c.params_retrieval < c.params_total and c.params_retrieval > tail
    assert 0 < c.gflops_retrieval < c.gflops_train
    assert Complexity.from_dict(c.as_dict()) == c
    assert "retrieval path" in c.line()
    with pytest.raises(ValueError, match="height must be a positive int"):
        model_complexity(model, 0, 16)


def test_resnet50_layout_at_384x144_matches_the_analytic_figure() -> None:
    """The counter on the real layout (meta device: no arithmetic) against docs/method.md's hand count."""
    model = IDKLModel(num_classes=395, arch="resnet50", base_width=64)
    c = model_complexity(model, 384, 144)
    assert c.gflops_retrieval / 2 == pytest.approx(ANALYTIC_GMAC_RETRIEVAL_384x144, rel=2e-3)
    # training = forward of both tails (+ purifier gating convolutions and heads) + backward, about 6 x the MACs
    assert c.gflops_train / 6 == pytest.approx(ANALYTIC_GMAC_TWO_TAILS_384x144, rel=0.03)
    assert c.params_retrieval == pytest.approx(23.5e6, rel=0.02)  # ResNet-50 without the fc layer, plus a BNNeck
