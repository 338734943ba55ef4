"""The IDKL network: shapes, gradients of a full training step, pretrained loading, embed options, building blocks."""

from __future__ import annotations

import dataclasses
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision
from torch import Tensor, nn
from torch.testing import assert_close

from idkl_lib.config import LossWeights, ModelConfig
from idkl_lib.losses import compute_losses
from idkl_lib.models import (
    BNNeck,
    GeM,
    IDKLModel,
    IDKLOutput,
    InformationPurifier,
    ModalityDiscriminator,
    build_model,
    gem,
)

NUM_CLASSES = 4


def tiny(arch: str = "resnet18", **kw: object) -> IDKLModel:
    return build_model(ModelConfig(num_classes=NUM_CLASSES, arch=arch, base_width=8, **kw))  # type: ignore[arg-type]


def batch(p: int = NUM_CLASSES, k: int = 4) -> tuple[Tensor, Tensor, Tensor]:
    images = torch.randn(p * k, 3, 32, 16)
    pids = torch.arange(p).repeat_interleave(k)
    modality = torch.tensor([1, 0]).repeat(p * k // 2)
    return images, pids, modality


@pytest.mark.parametrize(("arch", "dim"), [("resnet18", 64), ("resnet50", 256)])
@pytest.mark.parametrize("train", [True, False])
def test_output_shapes_in_train_and_eval(arch: str, dim: int, train: bool) -> None:
    model = tiny(arch).train(train)
    images, _, modality = batch()
    out = model(images, modality)
    assert isinstance(out, IDKLOutput)
    assert model.feature_dim == dim
    b = images.size(0)
    for f in dataclasses.fields(out):
        value = getattr(out, f.name)
        if f.name in ("disc_logits", "confuser_logits"):
            expected = (b, 2)
        elif "logits" in f.name:
            expected = (b, NUM_CLASSES)
        else:
            expected = (b, dim)
        assert value.shape == expected, f.name
        assert torch.isfinite(value).all(), f.name


def test_output_fields_are_wired_as_spec_section_1() -> None:
    torch.manual_seed(0)
    model = tiny().eval()  # eval: BN running stats and no dropout, so every head is deterministic
    images = torch.randn(4, 3, 32, 16)
    with torch.no_grad():
        out = model(images)
        x_sh, feat_map = model.backbone(images)
        maps = model.purifier(feat_map)
        expected = {
            "feat_sh": gem(x_sh),
            "feat_sp": gem(maps.out),
            "ip_feat_raw": gem(feat_map),
            "ip_feat_raw_gated": gem(maps.raw_gated),
            "ip_feat_in": gem(maps.inorm),
            "ip_feat_in_gated": gem(maps.inorm_gated),
        }
        expected |= {"bn_sh": model.bnneck_sh(expected["feat_sh"]), "bn_sp": model.bnneck_sp(expected["feat_sp"])}
        expected |= {
            "logits_sh": model.classifier_sh(expected["bn_sh"]),
            "logits_sp": model.classifier_sp(expected["bn_sp"]),
            "ip_logits_raw": model.ip_classifier(expected["ip_feat_raw"]),
            "ip_logits_raw_gated": model.ip_classifier(expected["ip_feat_raw_gated"]),
            "disc_logits": model.discriminator(expected["bn_sp"]),
            "confuser_logits": model.confuser(expected["bn_sh"]),
        }
    assert set(expected) == {f.name for f in dataclasses.fields(out)}
    for name, value in expected.items():
        assert_close(getattr(out, name), value, msg=name)


def test_standard_width_resnet50_gives_2048_features() -> None:
    model = IDKLModel(num_classes=3, arch="resnet50").eval()
    assert model.feature_dim == 2048
    with torch.no_grad():
        assert model.embed(torch.randn(2, 3, 32, 16)).shape == (2, 2048)


def test_full_training_step_gives_every_trainable_parameter_a_finite_gradient() -> None:
    torch.manual_seed(0)
    model = tiny().train()
    images, pids, modality = batch()
    weights = LossWeights()
    assert len(weights.active()) == len(LossWeights.names())  # every term on
    terms = compute_losses(model(images, modality), pids, modality, weights)
    torch.stack(list(terms.values())).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert sorted(frozen) == ["bnneck_sh.bias", "bnneck_sp.bias"]


def test_the_two_tails_are_distinct_parameter_sets() -> None:
    model = tiny()
    shared = {p.data_ptr() for p in model.backbone.shared_tail.parameters()}
    specific = {p.data_ptr() for p in model.backbone.specific_tail.parameters()}
    assert shared and specific and not shared & specific
    names = [n for n, _ in model.named_parameters()]
    assert any(n.startswith("backbone.shared_tail.layer4") for n in names)
    assert not any(n.startswith("backbone.layer3") for n in names)  # one stem, no dead layer3/4 copies


def test_last_stride_sets_the_map_size() -> None:
    images = torch.randn(2, 3, 64, 32)
    for stride, size in [(1, (4, 2)), (2, (2, 1))]:
        backbone = tiny(last_stride=stride).backbone.eval()
        x_sh, x_sp = backbone(images)
        assert x_sh.shape[-2:] == x_sp.shape[-2:] == size


# ---------------------------------------------------------------------------------------------- pretrained weights
@pytest.fixture
def resnet18_file(tmp_path: Path) -> tuple[Path, dict[str, Tensor]]:
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18_fake.pth"
    torch.save(state, path)
    return path, state


def test_local_pretrained_file_fills_the_stem_and_both_tails(resnet18_file: tuple[Path, dict[str, Tensor]]) -> None:
    path, state = resnet18_file
    model = build_model(ModelConfig(num_classes=5, arch="resnet18", pretrained=str(path)))
    own = model.backbone.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        if key.startswith(("layer3", "layer4")):
            assert torch.equal(own[f"shared_tail.{key}"], value), key
            assert torch.equal(own[f"specific_tail.{key}"], value), key
        else:
            assert torch.equal(own[key], value), key
    # loaded copies, not aliases: training one tail must not move the other
    shared_w = model.get_parameter("backbone.shared_tail.layer3.0.conv1.weight")
    assert shared_w.data_ptr() != model.get_parameter("backbone.specific_tail.layer3.0.conv1.weight").data_ptr()


def test_pretrained_file_of_another_arch_is_rejected(resnet18_file: tuple[Path, dict[str, Tensor]]) -> None:
    path, _ = resnet18_file
    with pytest.raises(RuntimeError, match="does not fit a resnet50 backbone.*missing key"):
        build_model(ModelConfig(num_classes=5, arch="resnet50", pretrained=path))


def test_unexpected_keys_warn(tmp_path: Path, resnet18_file: tuple[Path, dict[str, Tensor]]) -> None:
    _, state = resnet18_file
    path = tmp_path / "extra.pth"
    torch.save({"state_dict": {**state, "extra.weight": torch.zeros(1)}}, path)
    with pytest.warns(UserWarning, match="extra.weight"):
        build_model(ModelConfig(num_classes=5, arch="resnet18", pretrained=str(path)))


def test_missing_local_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_model(ModelConfig(num_classes=5, arch="resnet18", pretrained=str(tmp_path / "nope.pth")))


def test_offline_pretrained_error_says_where_to_put_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError) as err:
        build_model(ModelConfig(num_classes=5, arch="resnet18", pretrained=True))
    message = str(err.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "pretrained=False" in message and "pretrained='/path/to/" in message and "network unreachable" in message


def test_model_config_validation() -> None:
    with pytest.raises(ValueError, match="valid architectures: resnet50, resnet18"):
        ModelConfig(num_classes=3, arch="vit")
    with pytest.raises(ValueError, match="narrow network"):
        ModelConfig(num_classes=3, base_width=16, pretrained=True)
    with pytest.raises(ValueError, match="num_classes=0"):
        ModelConfig(num_classes=0)
    with pytest.raises(ValueError, match="last_stride"):
        ModelConfig(num_classes=3, last_stride=3)
    assert ModelConfig(num_classes=3, pretrained=Path("w.pth")).pretrained == "w.pth"


# ------------------------------------------------------------------------------------------------------------ embed
def test_embed_options() -> None:
    torch.manual_seed(0)
    model = tiny().eval()
    images, _, modality = batch(2, 2)
    with torch.no_grad():
        out = model(images, modality)
        assert_close(model.embed(images, modality), out.bn_sh)
        assert_close(model.embed(images, which="specific"), out.bn_sp)
        concat = model.embed(images, which="concat")
        assert concat.shape == (4, 2 * model.feature_dim)
        assert_close(concat, torch.cat([out.bn_sh, out.bn_sp], dim=1))
        flipped = model.embed(images, which="concat", flip=True)
        mirrored = model.embed(images.flip(-1), which="concat")
        assert_close(flipped, (concat + mirrored) / 2)
        assert not torch.allclose(flipped, concat)
    with pytest.raises(ValueError, match="use one of shared, specific, concat"):
        model.embed(images, which="both")  # type: ignore[arg-type]


def test_embed_keeps_gradients_for_gradcam_and_target_layers_run_once() -> None:
    model = tiny().eval()
    images = torch.randn(2, 3, 32, 16, requires_grad=True)
    calls: dict[str, int] = {"shared": 0, "specific": 0}
    for which in calls:
        (layer,) = model.gradcam_target_layers(which)  # type: ignore[arg-type]
        layer.register_forward_hook(lambda *_, w=which: calls.__setitem__(w, calls[w] + 1))
    model.embed(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert calls == {"shared": 1, "specific": 0}
    model(images)
    assert calls == {"shared": 2, "specific": 1}
    assert model.gradcam_target_layers("specific")[0] is model.backbone.specific_tail.layer4[-1]


def test_channels_last_forward_matches_contiguous() -> None:
    model = tiny().eval()
    images = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        reference = model(images)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        out = model(images.contiguous(memory_format=torch.channels_last))
    for f in dataclasses.fields(out):
        assert_close(getattr(out, f.name), getattr(reference, f.name), rtol=1e-4, atol=1e-4)


def test_bad_inputs_raise() -> None:
    model = tiny()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(2, 32, 16))
    with pytest.raises(ValueError, match="modality must have shape"):
        model(torch.randn(2, 3, 32, 16), torch.zeros(3))


# --------------------------------------------------------------------------------------------------- building blocks
def test_purifier_is_the_cross_wired_formula() -> None:
    torch.manual_seed(0)
    purifier = InformationPurifier(32, reduction=16).train()
    feat = torch.randn(3, 32, 4, 2)
    maps = purifier(feat)
    inorm = nn.functional.instance_norm(feat) * purifier.inorm.weight.view(1, -1, 1, 1)  # affine bias starts at 0
    m_in, m_raw = purifier.gate_in(inorm), purifier.gate_raw(feat)
    assert m_in.shape == feat.shape  # per-pixel masks, no pooling
    assert_close(maps.inorm, inorm)
    assert_close(maps.out, m_in * (m_raw * feat) + m_raw * (m_in * inorm))
    assert_close(maps.raw_gated, m_raw * feat)
    assert_close(maps.inorm_gated, m_in * inorm)
    convs = [m for m in purifier.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2, 32, 2, 32] and all(c.bias is None for c in convs)
    assert purifier.inorm.affine and purifier.inorm.track_running_stats
    with pytest.raises(ValueError, match="reduction"):
        InformationPurifier(8, reduction=16)


def test_gem_bnneck_and_discriminator() -> None:
    x = torch.rand(2, 5, 3, 4) - 0.2
    expected = x.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
    assert_close(gem(x), expected)
    assert_close(GeM()(x), expected)
    assert not list(GeM().parameters())  # p is fixed, not learnable
    assert gem(x.bfloat16()).dtype == torch.bfloat16
    neck = BNNeck(5)
    assert not neck.bias.requires_grad and torch.equal(neck.bias, torch.zeros(5))
    disc = ModalityDiscriminator(5).train()
    assert disc(torch.randn(4, 5)).shape == (4, 2)
    dropouts = [m.p for m in disc.modules() if isinstance(m, nn.Dropout)]
    assert dropouts == [0.5, 0.5] and sum(isinstance(m, nn.BatchNorm1d) for m in disc.modules()) == 2
