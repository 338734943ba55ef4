"""IDKL losses: every vectorised loss against a naive per-sample transcription (docs/method.md#3-losses), plus the
weights config."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor
from torch.testing import assert_close

from idkl_lib import losses as L
from idkl_lib.config import LossWeights, ModelConfig
from idkl_lib.losses import objective, purifier
from idkl_lib.models import IDKLOutput, build_model
from idkl_lib.testing.naive_losses import (
    naive_ce,
    naive_centroid_dist,
    naive_centroid_loss,
    naive_entropy_margin,
    naive_objective,
    naive_pseudo,
    naive_skl,
    naive_sm_skl,
    naive_soft_dist,
    naive_tgsa,
    naive_triplet,
    rows,
)

DT = torch.float64


# ---------------------------------------------------------------------------------------------------- batch helpers
def layout(p: int, k: int) -> tuple[Tensor, Tensor]:
    """Sampler layout: p identities (labels 0..p-1 in shuffled order) x k images, infrared (1) / visible (0)."""
    ids = torch.randperm(p)
    pids = ids.repeat_interleave(k)
    modality = torch.tensor([1, 0]).repeat(p * k // 2)
    return pids, modality


def random_output(b: int, num_classes: int, dim: int = 16, dtype: torch.dtype = DT, grad: bool = False) -> IDKLOutput:
    def t(*shape: int) -> Tensor:
        return torch.randn(*shape, dtype=dtype).requires_grad_(grad)

    feats = {f: t(b, dim).abs() for f in ("feat_sh", "feat_sp", "bn_sh", "bn_sp")}
    feats |= {f: t(b, dim).abs() for f in ("ip_feat_raw", "ip_feat_raw_gated", "ip_feat_in", "ip_feat_in_gated")}
    logits = {f: t(b, num_classes) for f in ("logits_sh", "logits_sp", "ip_logits_raw", "ip_logits_raw_gated")}
    if grad:
        feats = {k: v.detach().requires_grad_() for k, v in feats.items()}
    return IDKLOutput(**feats, **logits, disc_logits=t(b, 2), confuser_logits=t(b, 2))


SIZES = [(3, 4), (4, 6)]


# ------------------------------------------------------------------------------------------------------ triplet
@pytest.mark.parametrize(("p", "k"), SIZES)
@pytest.mark.parametrize("margin", [0.3, 1.3])
def test_triplet_matches_naive(p: int, k: int, margin: float) -> None:
    pids, _ = layout(p, k)
    x = torch.randn(p * k, 8, dtype=DT)
    assert_close(L.batch_hard_triplet_loss(x, pids, margin), naive_triplet(x, pids, margin))


def test_triplet_singleton_identities_use_the_anchor_as_positive() -> None:
    pids = torch.tensor([0, 1, 2, 3])
    x = torch.randn(4, 5, dtype=DT)
    assert_close(L.batch_hard_triplet_loss(x, pids, 100.0), naive_triplet(x, pids, 100.0))


def test_triplet_zero_for_well_separated_clusters() -> None:
    pids = torch.arange(4).repeat_interleave(3)
    x = 100.0 * torch.eye(4, dtype=DT)[pids] + 0.01 * torch.randn(12, 4, dtype=DT)
    assert L.batch_hard_triplet_loss(x, pids, 1.3).item() == 0.0
    assert L.batch_hard_triplet_loss(x, torch.randperm(12) % 4, 1.3).item() > 0  # same points, shuffled labels


def test_triplet_needs_two_identities() -> None:
    with pytest.raises(ValueError, match="at least two identities"):
        L.batch_hard_triplet_loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))


# ---------------------------------------------------------------------------------------------------- identity / CE
def test_identity_loss_matches_naive_and_upcasts_half() -> None:
    logits, y = torch.randn(10, 7, dtype=DT), torch.randint(0, 7, (10,))
    assert_close(L.identity_loss(logits, y), naive_ce(logits, y))
    assert L.identity_loss(logits.bfloat16(), y).dtype == torch.float32


# ------------------------------------------------------------------------------------------------- symmetric KL
def test_symmetric_kl_matches_kldivloss_is_symmetric_and_zero_on_equal_inputs() -> None:
    a, b = torch.randn(6, 9, dtype=DT), torch.randn(6, 9, dtype=DT)
    assert_close(L.symmetric_kl(a, b), naive_skl(a, b))
    assert_close(L.symmetric_kl(a, b), L.symmetric_kl(b, a))
    assert_close(L.symmetric_kl(a, a + 3.0), torch.zeros((), dtype=DT))  # softmax is shift invariant
    with pytest.raises(ValueError, match="one shape"):
        L.symmetric_kl(a, b[:, :4])


def test_distance_logits_drop_the_diagonal_and_clamp_at_1e_6() -> None:
    x = torch.randn(7, 5, dtype=DT)
    x[3] = x[1]  # a zero distance is clamped to sqrt(1e-6) = 1e-3
    assert_close(L.distance_logits(x), naive_soft_dist(x))
    assert_close(L.distance_logits(x)[1, 2], torch.tensor(1e-3, dtype=DT))


# ------------------------------------------------------------------------------------------------------------ TGSA
@pytest.mark.parametrize(("p", "k"), SIZES)
def test_tgsa_terms_match_naive(p: int, k: int) -> None:
    pids, sub = layout(p, k)
    f_sh, f_sp = torch.randn(p * k, 8, dtype=DT), torch.randn(p * k, 8, dtype=DT)
    t = naive_tgsa(f_sh, f_sp, sub)
    assert_close(L.tgsa_inter_loss(f_sh, f_sp, sub), t["inter_v"] + t["inter_i"])
    assert_close(L.tgsa_intra_loss(f_sh, sub), t["intra1"])
    assert_close(L.tgsa_intra_cross_loss(f_sh, sub), t["intra2"] + t["intra3"])


def test_tgsa_degenerate_cases_are_zero() -> None:
    pids, sub = layout(4, 4)
    f = torch.randn(16, 8, dtype=DT)
    assert_close(L.tgsa_inter_loss(f, f.clone(), sub), torch.zeros((), dtype=DT))  # shared == specific
    same_vi = torch.randn(8, 8, dtype=DT).repeat_interleave(2, 0)  # each infrared row equals the next visible row
    assert_close(L.tgsa_intra_loss(same_vi, sub), torch.zeros((), dtype=DT))


def test_tgsa_cross_needs_even_rows_per_modality() -> None:
    pids, sub = layout(3, 2)
    with pytest.raises(ValueError, match="even number of samples per modality"):
        L.tgsa_intra_cross_loss(torch.randn(6, 4), sub)


# ------------------------------------------------------------------------------------------------------------- CSA
@pytest.mark.parametrize(("p", "k"), SIZES)
def test_csa_terms_match_naive(p: int, k: int) -> None:
    pids, sub = layout(p, k)
    z, z_sp = torch.randn(p * k, 5, dtype=DT), torch.randn(p * k, 5, dtype=DT)
    zv, zi, spv, spi = rows(z, sub, 0), rows(z, sub, 1), rows(z_sp, sub, 0), rows(z_sp, sub, 1)
    assert_close(L.csa1_inter_loss(z, z_sp, sub), naive_skl(zv, spv) + naive_skl(zi, spi))
    assert_close(L.csa1_intra_loss(z, sub), naive_skl(zv, zi))
    assert_close(L.csa2_inter_loss(z, z_sp, sub, k // 2), naive_sm_skl(zv, spv, pids) + naive_sm_skl(zi, spi, pids))
    assert_close(L.csa2_intra_loss(z, sub, k // 2), naive_sm_skl(zv, zi, pids))


def test_set_level_logits_row_j_holds_the_jth_sample_of_every_identity() -> None:
    logits = torch.arange(6 * 2).view(6, 2)  # 3 identities x 2 samples, 2 classes
    out = L.set_level_logits(logits, 2)
    assert out.tolist() == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]
    with pytest.raises(ValueError, match="groups of 4"):
        L.set_level_logits(logits, 4)


def test_csa_degenerate_cases_are_zero() -> None:
    pids, sub = layout(3, 4)
    z = torch.randn(12, 5, dtype=DT)
    zero = torch.zeros((), dtype=DT)
    assert_close(L.csa1_inter_loss(z, z.clone(), sub), zero)
    assert_close(L.csa2_inter_loss(z, z.clone(), sub, 2), zero)
    same_vi = torch.randn(6, 5, dtype=DT).repeat_interleave(2, 0)  # visible logits == infrared logits, row aligned
    assert_close(L.csa1_intra_loss(same_vi, sub), zero)
    assert_close(L.csa2_intra_loss(same_vi, sub, 2), zero)


# ------------------------------------------------------------------------------------------------- purifier (L_ip)
@pytest.mark.parametrize(("p", "k"), SIZES)
def test_purifier_losses_match_naive(p: int, k: int) -> None:
    pids, sub = layout(p, k)
    l_f, l_fp = torch.randn(p * k, 6, dtype=DT), 2 * torch.randn(p * k, 6, dtype=DT)
    assert_close(L.entropy_margin_loss(l_f, l_fp), naive_entropy_margin(l_f, l_fp))
    a, b = torch.randn(p * k, 8, dtype=DT), torch.randn(p * k, 8, dtype=DT)
    assert_close(L.modality_centroid_distance(a, pids, sub), naive_centroid_dist(a, pids, sub))
    assert_close(L.modality_centroid_loss(a, b, pids, sub), naive_centroid_loss(a, b, pids, sub))


def test_purifier_losses_are_zero_when_the_purified_side_is_better() -> None:
    pids, sub = layout(3, 4)
    l_f = torch.randn(12, 6, dtype=DT)
    assert L.entropy_margin_loss(l_f, 10 * l_f).item() == 0.0  # sharper logits -> lower entropy
    a = torch.randn(12, 8, dtype=DT)
    assert L.modality_centroid_loss(a, 0.5 * a, pids, sub).item() == 0.0  # half the centroid gap


def test_layout_centroids_equal_the_general_centroids() -> None:
    pids, sub = layout(4, 6)
    x = torch.randn(24, 5, dtype=DT)
    general = L.modality_centroid_distance(x, pids, sub)  # ascending identity order
    blockwise = purifier._layout_centroid_distance(x, 4)  # batch order
    assert_close(blockwise, general[pids[::6]])


def test_centroid_loss_needs_both_modalities_per_identity() -> None:
    pids = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"identities \[1\] lack"):
        L.modality_centroid_distance(torch.randn(4, 3), pids, torch.tensor([1, 0, 1, 1]))


# ---------------------------------------------------------------------------------------- discriminator / confuser
def test_confuser_pseudo_labels_follow_the_reference_rule() -> None:
    _, sub = layout(4, 6)
    assert L.confuser_pseudo_labels(sub).tolist() == naive_pseudo(sub).tolist()
    # the worked example of docs/method.md#37-modality-discriminator-and-confuser-losses
    assert L.confuser_pseudo_labels(sub).tolist() == [1, 0, 0, 1] * 6
    other = torch.randint(0, 2, (10,))
    assert L.confuser_pseudo_labels(other).tolist() == naive_pseudo(other).tolist()


def test_modality_losses_match_naive() -> None:
    _, sub = layout(3, 4)
    logits = torch.randn(12, 2, dtype=DT)
    assert_close(L.modality_discriminator_loss(logits, sub), naive_ce(logits, sub))
    assert_close(L.modality_confuser_loss(logits, sub), naive_ce(logits, naive_pseudo(sub)))
    with pytest.raises(ValueError, match="must be 0"):
        L.modality_discriminator_loss(logits, sub + 1)


# ----------------------------------------------------------------------------------------------- compute_losses
def test_sysu_objective_equals_spec_2_8_on_a_b120_model_output() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=12, arch="resnet18", base_width=8)).double().train()
    pids, sub = layout(12, 10)
    out = model(torch.randn(120, 3, 32, 16, dtype=DT), sub)
    terms = L.compute_losses(out, pids, sub, LossWeights.preset("sysu"))
    assert list(terms) == list(LossWeights.names())
    assert_close(sum(terms.values()), naive_objective(out, pids, sub, distalign=True))


@pytest.mark.parametrize(("preset", "distalign"), [("regdb", False), ("small_batch", True)])
def test_other_presets_equal_the_reference_small_batch_branch(preset: str, distalign: bool) -> None:
    pids, sub = layout(6, 10)  # B = 60, the reference's RegDB batch
    out = random_output(60, 6)
    total = sum(L.compute_losses(out, pids, sub, LossWeights.preset(preset)).values())
    assert_close(total, naive_objective(out, pids, sub, distalign=distalign))


def test_compute_losses_weights_terms_and_skips_zero_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    pids, sub = layout(4, 4)
    out = random_output(16, 4)
    full = L.compute_losses(out, pids, sub, LossWeights())

    def boom(*args: object, **kwargs: object) -> Tensor:
        raise AssertionError("a zero-weight term was computed")

    monkeypatch.setattr(objective, "_tgsa_inter", boom)
    weights = LossWeights().replace(tgsa_inter=0.0, id=2.5)
    terms = L.compute_losses(out, pids, sub, weights)
    assert "tgsa_inter" not in terms and set(terms) == set(weights.active())
    assert_close(terms["id"], 2.5 * naive_ce(out.logits_sh, pids))
    assert_close(terms["csa1_intra"], full["csa1_intra"])


def test_compute_losses_gradients_reach_every_output_and_inputs_are_untouched() -> None:
    pids, sub = layout(3, 4)
    out = random_output(12, 3, grad=True)
    before = {f.name: getattr(out, f.name).detach().clone() for f in dataclasses.fields(out)}
    pids_before, sub_before = pids.clone(), sub.clone()
    torch.stack(list(L.compute_losses(out, pids, sub, LossWeights()).values())).sum().backward()
    for f in dataclasses.fields(out):
        grad = getattr(out, f.name).grad
        if f.name in ("bn_sh", "bn_sp", "ip_feat_raw", "ip_feat_raw_gated"):  # read by the model's heads only
            assert grad is None
            continue
        assert grad is not None and torch.isfinite(grad).all(), f.name
        assert_close(getattr(out, f.name).detach(), before[f.name])
    assert torch.equal(pids, pids_before) and torch.equal(sub, sub_before)
    # mutual learning: both sides of the alignments receive gradient (no detach)
    fsh, fsp = torch.randn(12, 4, requires_grad=True), torch.randn(12, 4, requires_grad=True)
    L.tgsa_inter_loss(fsh, fsp, sub).backward()
    assert fsh.grad.abs().sum() > 0 and fsp.grad.abs().sum() > 0  # type: ignore[union-attr]


def test_compute_losses_upcasts_bfloat16_outputs() -> None:
    pids, sub = layout(2, 4)
    out = random_output(8, 2, dtype=torch.bfloat16)
    for value in L.compute_losses(out, pids, sub, LossWeights()).values():
        assert value.dtype == torch.float32 and torch.isfinite(value)


@pytest.mark.parametrize(
    ("pids", "modality", "match"),
    [
        ([0, 0, 1, 1, 0, 0, 1, 1], [1, 0] * 4, "more than one block"),
        ([0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0], "K must be even"),
        ([0, 0, 1, 1, 1, 1], [1, 0] * 3, "K must be even and divide|contiguous"),
        ([0, 0, 0, 0], [1, 0, 1, 0], "single identity"),
        ([0, 0, 1, 1], [0, 1, 0, 1], r"identity block 0 has modalities \[0, 1\], expected \[1, 0\]"),
        ([0, 0, 0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 1, 0, 0], "identity block 1"),
        ([0, 0, 1, 1], [1, 0, 2, 0], "must be 0"),
    ],
)
def test_layout_violations_raise_a_clear_error(pids: list[int], modality: list[int], match: str) -> None:
    pids_t, mod_t = torch.tensor(pids), torch.tensor(modality)
    with pytest.raises(ValueError, match=match) as err:
        L.compute_losses(random_output(len(pids), 2), pids_t, mod_t, LossWeights())
    if "must be 0" not in match:
        assert "CrossModalityIdentitySampler" in str(err.value)


def test_check_batch_layout_returns_p_and_k() -> None:
    pids, sub = layout(5, 6)
    assert L.check_batch_layout(pids, sub) == (5, 6)
    with pytest.raises(ValueError, match="CrossModalityIdentitySampler"):
        perm = torch.randperm(30)
        L.check_batch_layout(pids[perm], sub[perm])


# -------------------------------------------------------------------------------------------------- LossWeights
def test_loss_weight_presets() -> None:
    sysu = LossWeights.preset("sysu")
    assert sysu == LossWeights() == LossWeights.preset("llcm")
    assert (sysu.tgsa_inter, sysu.csa1_inter, sysu.csa2_inter) == (0.6, 0.8, 0.8)
    assert sysu.ip_entropy == sysu.ip_centroid == 0.1
    regdb = LossWeights.preset("regdb")
    assert regdb.tgsa_inter == regdb.tgsa_intra == regdb.tgsa_intra_cross == 0.0 and regdb.csa2_inter == 0.3
    assert set(LossWeights.preset("baseline").active()) == {"id", "id_sp", "tri_sh", "tri_sp"}
    no_distill = LossWeights.preset("no_distill").active()
    assert not any(n.startswith(("tgsa", "csa")) for n in no_distill) and "disc" in no_distill
    with pytest.raises(ValueError, match="valid presets: sysu, llcm, regdb"):
        LossWeights.preset("market")


def test_loss_weight_overrides_and_validation() -> None:
    w = LossWeights().without("mdr")
    assert w.tgsa_intra == w.tgsa_intra_cross == w.csa1_intra == w.csa2_intra == 0.0 and w.tgsa_inter == 0.6
    assert LossWeights().without("id").id_sp == 1.0  # a term name removes only that term
    assert LossWeights().replace(disc=2).disc == 2.0
    with pytest.raises(ValueError, match="unknown loss term.*valid names: id, id_sp"):
        LossWeights().replace(center=1.0)
    with pytest.raises(ValueError, match="unknown loss term or group 'tgs'"):
        LossWeights().without("tgs")
    with pytest.raises(ValueError, match="LossWeights.csa1_inter=-0.1 is negative"):
        LossWeights(csa1_inter=-0.1)
    with pytest.raises(ValueError, match="finite"):
        LossWeights(id=float("nan"))
    with pytest.raises(ValueError, match="every weight at 0"):
        LossWeights().only("tgsa").without("tgsa")
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossWeights().id = 2.0  # type: ignore[misc]
