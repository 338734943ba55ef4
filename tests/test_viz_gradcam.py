"""Grad-CAM for embeddings: targets, localisation, side effects, overlays and the grid figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from idkl_lib.viz.gradcam import (
    EmbeddingModel,
    SimilarityTarget,
    cam_mass,
    embed_images,
    gradcam_grid,
    overlay_cam,
    similarity_cam,
)


class TinyReID(nn.Module):
    """Stand-in with the IDKL model's interface: a stem, a shared and a specific conv tail, a BNNeck.

    ``region`` restricts the pooled area of the final map ("left" / "right" half, or "all").
    """

    def __init__(self, region: str = "all", dim: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.shared = nn.Sequential(nn.Conv2d(8, dim, 3, padding=1), nn.ReLU())
        self.specific = nn.Sequential(nn.Conv2d(8, dim, 3, padding=1), nn.ReLU())
        self.modality_bias = nn.Embedding(2, dim)
        self.neck = nn.BatchNorm1d(dim)
        self.region = region

    def _pool(self, fmap: torch.Tensor) -> torch.Tensor:
        w = fmap.shape[-1]
        if self.region == "left":
            fmap = fmap[..., : w // 2]
        elif self.region == "right":
            fmap = fmap[..., w // 2 :]
        return fmap.mean(dim=(2, 3))

    def embed(
        self, images: torch.Tensor, modality: torch.Tensor | None, which: str = "shared", flip: bool = False
    ) -> torch.Tensor:
        x = self.stem(images)
        parts = []
        if which in ("shared", "concat"):
            parts.append(self.neck(self._pool(self.shared(x))))
        if which in ("specific", "concat"):
            sp = self._pool(self.specific(x))
            parts.append(sp + (self.modality_bias(modality) if modality is not None else 0.0))
        return torch.cat(parts, dim=1)

    def gradcam_target_layers(self, which: str = "shared") -> list[nn.Module]:
        return [self.shared] if which == "shared" else [self.specific]


def _model(region: str = "all", seed: int = 0) -> TinyReID:
    torch.manual_seed(seed)
    model = TinyReID(region)
    model.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        model.embed(torch.randn(16, 3, 32, 16), None)
    return model


def _images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 16, generator=torch.Generator().manual_seed(seed))


def _refs(model: TinyReID, which: str = "shared", seed: int = 2, n: int = 3) -> torch.Tensor:
    return embed_images(model, _images(n, seed), torch.zeros(n, dtype=torch.long), which=which)


def test_similarity_target_is_cosine_similarity() -> None:
    ref = torch.tensor([1.0, 0.0, 0.0])
    target = SimilarityTarget(ref)
    assert target(torch.tensor([2.0, 0.0, 0.0])).item() == pytest.approx(1.0)
    assert target(torch.tensor([0.0, 3.0, 0.0])).item() == pytest.approx(0.0, abs=1e-7)
    batch = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    assert torch.allclose(target(batch), torch.tensor([2**-0.5, -1.0]))
    ref[0] = -5.0  # the target keeps its own copy
    assert target(torch.tensor([1.0, 0.0, 0.0])).item() == pytest.approx(1.0)


def test_embedding_model_forwards_to_embed_with_modality() -> None:
    model = _model().eval()
    x = _images(4)
    wrapped = EmbeddingModel(model, "specific", modality=1)
    expected = model.embed(x, torch.ones(4, dtype=torch.long), which="specific")
    assert torch.allclose(wrapped(x), expected)
    assert not torch.allclose(EmbeddingModel(model, "specific", modality=0)(x), expected)
    with pytest.raises(ValueError, match="modality has 2 entries"):
        EmbeddingModel(model, "specific", modality=torch.tensor([0, 1]))(x)


def test_cam_shape_range_and_dependence_on_reference() -> None:
    model = _model()
    x = _images(3)
    cam_a = similarity_cam(model, x, _refs(model, seed=2))
    cam_b = similarity_cam(model, x, _refs(model, seed=7))
    assert cam_a.shape == (3, 32, 16) and cam_a.dtype == np.float32
    assert cam_a.min() >= 0.0 and cam_a.max() <= 1.0 + 1e-6
    assert np.all(cam_a.reshape(3, -1).max(axis=1) > 0.5)  # each map is scaled, not empty
    assert np.abs(cam_a - cam_b).max() > 0.1  # another reference explains another similarity


@pytest.mark.parametrize("method", ["hirescam", "layercam", "gradcam-elementwise"])
def test_cam_concentrates_where_the_embedding_looks(method: str) -> None:
    left = np.zeros((32, 16), dtype=bool)
    left[:, :8] = True
    x = _images(2)
    model_left, model_right = _model("left"), _model("right")
    cam_left = similarity_cam(model_left, x, _refs(model_left, n=2), method=method)
    cam_right = similarity_cam(model_right, x, _refs(model_right, n=2), method=method)
    for i in range(2):
        assert cam_mass(cam_left[i], left) > 0.85
        assert cam_mass(cam_right[i], ~left) > 0.85


def test_model_state_is_restored_and_hooks_released() -> None:
    model = _model()
    model.train()
    model.neck.eval()  # mixed modes must survive
    model.stem[0].weight.requires_grad_(False)
    model.shared[0].weight.grad = torch.full_like(model.shared[0].weight, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = {name: m.training for name, m in model.named_modules()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    x = _images(2)
    x_before = x.clone()
    for which in ("shared", "specific", "concat"):
        similarity_cam(model, x, _refs(model, which, n=2), which=which, modality=torch.tensor([0, 1]))
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert torch.equal(model.shared[0].weight.grad, torch.full_like(model.shared[0].weight, 0.5))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "shared.0.weight")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(model.shared._forward_hooks) == 0 and len(model.specific._forward_hooks) == 0
    assert torch.equal(x, x_before) and not x.requires_grad


def test_branches_use_their_own_layers() -> None:
    model = _model()
    x = _images(2)
    cam_sh = similarity_cam(model, x, _refs(model, "shared", n=2), which="shared", modality=0)
    cam_sp = similarity_cam(model, x, _refs(model, "specific", n=2), which="specific", modality=0)
    cam_cat = similarity_cam(model, x, _refs(model, "concat", n=2), which="concat", modality=0, method="gradcam++")
    assert np.abs(cam_sh - cam_sp).max() > 0.1
    assert cam_cat.shape == (2, 32, 16)
    with pytest.raises(ValueError, match="which must be"):
        similarity_cam(model, x, _refs(model, n=2), which="both")
    with pytest.raises(ValueError, match="unknown CAM method"):
        similarity_cam(model, x, _refs(model, n=2), method="nope")


def test_own_embedding_as_reference_warns() -> None:
    model = _model()
    x = _images(2)
    own = embed_images(model, x)
    with pytest.warns(RuntimeWarning, match="own embedding"):
        similarity_cam(model, x, own)


def test_embed_images_matches_eval_embed_and_restores_mode() -> None:
    model = _model()
    model.train()
    x = _images(5)
    out = embed_images(model, x, torch.zeros(5, dtype=torch.long), batch_size=2)
    assert model.training and model.neck.training
    model.eval()
    assert torch.allclose(out, model.embed(x, torch.zeros(5, dtype=torch.long)), atol=1e-6)


def test_overlay_cam_colours_follow_the_map() -> None:
    img = np.full((20, 10, 3), 0.5, dtype=np.float32)
    cam = np.zeros((20, 10), dtype=np.float32)
    cam[:10] = 1.0
    out = overlay_cam(img, cam)
    assert out.dtype == np.uint8 and out.shape == (20, 10, 3)
    assert np.abs(out[:10].astype(int) - out[10:].astype(int)).sum(axis=-1).min() > 60
    assert np.array_equal(img, np.full((20, 10, 3), 0.5, dtype=np.float32))
    with pytest.raises(ValueError, match="does not match"):
        overlay_cam(img, np.zeros((5, 5)))


def test_gradcam_grid_layout() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.random((2, 32, 16, 3)).astype(np.float32)
    cams = {"shared (IDKL)": rng.random((2, 32, 16)), "specific (IDKL)": rng.random((2, 32, 16))}
    fig = gradcam_grid(imgs, cams, row_labels=["query 0", "query 1"], title="Figure 4")
    assert sum(t.type == "image" for t in fig.data) == 6
    titles = [a.text for a in fig.layout.annotations]
    assert {"image", "shared (IDKL)", "specific (IDKL)"} <= set(titles)
    assert fig.layout.title.text.startswith("Figure 4")
    assert fig.layout.yaxis.title.text == "query 0"
    with pytest.raises(ValueError, match="maps for 2 images"):
        gradcam_grid(imgs, {"x": rng.random((3, 32, 16))})


def test_cam_of_a_model_that_sees_everything_is_not_one_sided() -> None:
    # control for the localisation test: the same method on a model pooling the whole map spreads its mass
    model = _model("all")
    left = np.zeros((32, 16), dtype=bool)
    left[:, :8] = True
    cam = similarity_cam(model, _images(2), _refs(model, n=2), method="hirescam")
    assert all(0.1 < cam_mass(c, left) < 0.9 for c in cam)


def test_cam_on_image_batch_matches_single_image() -> None:
    model = _model()
    x = _images(3)
    refs = _refs(model)
    batched = similarity_cam(model, x, refs)
    single = similarity_cam(model, x[1:2], refs[1:2])
    assert np.allclose(batched[1], single[0], atol=1e-4)
    assert F.cosine_similarity(refs[0], refs[1], dim=0) < 0.9999
