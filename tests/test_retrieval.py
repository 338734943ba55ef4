"""From a trained checkpoint to retrieval: feature files, search (against evaluate_rank), ONNX export and parity, and
the bad-input cases of the three commands (idkl_lib.features, idkl_lib.search, idkl_lib.export)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from idkl_lib.data import VIDataset
from idkl_lib.distances import pairwise_distance
from idkl_lib.eval.rank import evaluate_rank
from idkl_lib.eval.retrieval import camera_ids
from idkl_lib.eval.views import RankView
from idkl_lib.features import FeatureFile, FeatureMismatchError, collect_images, extract_image_features
from idkl_lib.features import cli as features_cli
from idkl_lib.search import SearchError, load_queries, search, write_csv, write_html, write_json
from idkl_lib.search import cli as search_cli

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import tiny_config  # noqa: E402

onnx = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(sysu_root: Path, sysu_dataset: VIDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint trained for one epoch on the tiny synthetic SYSU-MM01 set."""
    from idkl_lib.train.loop import train

    return train(
        tiny_config(sysu_root, tmp_path_factory.mktemp("run"), epochs=1), dataset=sysu_dataset, progress=False
    ).checkpoint


@pytest.fixture(scope="module")
def test_feats(trained: Path, sysu_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Features of the test split (query + gallery) written by the command line."""
    out = tmp_path_factory.mktemp("feats") / "test.npz"
    argv = ["--checkpoint", str(trained), "--images", str(sysu_root), "--split", "test", "--out", str(out)]
    assert features_cli.main([*argv, "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from idkl_lib.export import export_onnx

    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = export_onnx(trained, out, batch=8)
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4 and result.parity.min_cosine > 0.9999
    return out


def test_features_are_written_and_read_back_with_labels_and_fingerprint(
    test_feats: Path, trained: Path, sysu_dataset: VIDataset
) -> None:
    feats = FeatureFile.load(test_feats)
    records = sysu_dataset.query + sysu_dataset.gallery
    assert feats.paths == tuple(str(Path(s.path).resolve()) for s in records)
    assert feats.pids.tolist() == [s.pid for s in records]
    assert feats.camids.tolist() == [s.camid for s in records]
    assert feats.modalities.tolist() == [s.modality for s in records]
    assert feats.layout == "sysu" and feats.meta["backend"] == "torch" and feats.meta["feature"] == "shared"
    np.testing.assert_allclose(np.linalg.norm(feats.features, axis=1), 1.0, atol=1e-5)
    # the same features as the evaluation's extraction, normalised
    from idkl_lib.checkpoint import load_trained_model
    from idkl_lib.eval.features import extract_features

    model, cfg, _ = load_trained_model(trained)
    reference = F.normalize(extract_features(model, list(records), cfg.height, cfg.width), dim=1).numpy()
    np.testing.assert_allclose(feats.features, reference, atol=1e-6)
    # from Python: the same file, and a folder outside the split gives the same labels by path
    again = extract_image_features(trained, [Path(records[0].path).parent])
    assert again.fingerprint == feats.fingerprint
    assert again.pids[0] == records[0].pid and again.modalities[0] == records[0].modality


def _metrics_from_lists(result, q_idx: np.ndarray) -> tuple[np.ndarray, float, float]:  # type: ignore[no-untyped-def]
    """First-match CMC (20 ranks), mAP and mINP computed from the search's ranked lists alone."""
    cmc, aps, inps = np.zeros(20), [], []
    for row in range(len(q_idx)):
        ranked = result.ranked(row)
        hits = result.gallery.pids[ranked] == result.query.pids[row]
        if not hits.any():
            continue
        positions = np.flatnonzero(hits) + 1
        cmc[positions[0] - 1 :] += positions[0] <= 20
        aps.append(np.mean(np.arange(1, positions.size + 1) / positions))
        inps.append(positions.size / positions[-1])
    return cmc / len(aps), float(np.mean(aps)), float(np.mean(inps))


def test_search_ranks_as_evaluate_rank_on_a_synthetic_split(test_feats: Path, sysu_dataset: VIDataset) -> None:
    feats = FeatureFile.load(test_feats)
    infrared = np.flatnonzero(feats.modalities == 1)
    queries = FeatureFile(
        feats.features[infrared],
        tuple(feats.paths[i] for i in infrared),
        feats.pids[infrared],
        feats.camids[infrared],
        feats.modalities[infrared],
        feats.meta,
    )
    # the whole test split as gallery: the cross-modality rule must keep only the visible images
    result = search(feats, queries, topk=10, camera_rule="protocol")
    visible = np.flatnonzero(feats.modalities == 0)
    assert all(set(result.ranked(i).tolist()) <= set(visible.tolist()) for i in range(len(queries)))
    # the evaluation's distances and camera rule (SYSU: every same-camera image, camera 3 counted as camera 2)
    q = F.normalize(torch.from_numpy(feats.features[infrared]), dim=1)
    g = F.normalize(torch.from_numpy(feats.features[visible]), dim=1)
    distmat = pairwise_distance(q, g, metric="euclidean").numpy()
    q_rec, g_rec = sysu_dataset.query, sysu_dataset.gallery
    alias = {3: 2}
    expected = evaluate_rank(
        distmat,
        [s.pid for s in q_rec],
        [s.pid for s in g_rec],
        camera_ids(q_rec, alias),
        camera_ids(g_rec, alias),
        max_rank=20,
        cmc_mode="first_match",
    )
    cmc, m_ap, m_inp = _metrics_from_lists(result, infrared)
    np.testing.assert_allclose(cmc, expected.cmc, atol=1e-12)
    assert m_ap == pytest.approx(expected.mAP, abs=1e-12) and m_inp == pytest.approx(expected.mINP, abs=1e-12)
    view = RankView.from_records(distmat, q_rec, g_rec, camera_alias=alias)
    for row in range(len(q_rec)):
        np.testing.assert_array_equal(visible[view.ranked(row)], result.ranked(row))
        np.testing.assert_array_equal(result.top(row), result.ranked(row)[:10])
    # per-query AP of the rank-list viewer averages to evaluate_rank's mAP; the orders say what they are
    assert float(np.nanmean(view.average_precision())) == pytest.approx(expected.mAP, abs=1e-12)
    worst, text = view.query_order("worst")
    ap = view.average_precision()
    assert text == "worst AP first" and np.all(np.diff(ap[worst]) >= 0)
    assert view.query_order("drawn")[0].tolist() == list(range(len(q_rec)))


def test_search_outputs_and_rerank(test_feats: Path, tmp_path: Path) -> None:
    feats = FeatureFile.load(test_feats)
    queries = load_queries(feats, [Path(feats.paths[0]).parent])  # query images, embedded with the gallery's model
    result = search(feats, queries, topk=5, rerank=True)
    assert result.settings["rerank"] == {"k1": 20, "k2": 6, "lambda": 0.3}
    assert all(len(r["results"]) == 5 for r in result.as_records())
    page = write_html(result, tmp_path / "out.html").read_text()
    assert page.count("data:image/png;base64") == len(queries) * 6 and "rank 5" in page
    records = json.loads(write_json(result, tmp_path / "out.json").read_text())
    assert records["queries"][0]["results"][0]["rank"] == 1
    rows = write_csv(result, tmp_path / "out.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * len(queries) and rows[0].startswith("query_index,query_path")


def test_onnx_export_matches_pytorch_and_gives_the_same_top10(
    exported: Path, test_feats: Path, sysu_root: Path, tmp_path: Path
) -> None:
    import onnx as onnx_lib

    meta = {p.key: p.value for p in onnx_lib.load(str(exported)).metadata_props}
    info = json.loads(meta["idkl_model_info"])
    assert info["height"] == 32 and info["width"] == 32 and info["mean"] == [0.485, 0.456, 0.406]
    assert "resized to 32x32" in meta["preprocessing"]
    torch_feats = FeatureFile.load(test_feats)
    onnx_feats = extract_image_features(exported, [sysu_root], split="test", batch_size=7)  # dynamic batch: 7, 7, .., 3
    assert onnx_feats.meta["backend"] == "onnx" and onnx_feats.fingerprint == torch_feats.fingerprint
    assert float(np.abs(onnx_feats.features - torch_feats.features).max()) <= 1e-4
    queries = load_queries(torch_feats, [Path(torch_feats.paths[0]).parent], model=exported)
    by_torch = search(torch_feats, queries, topk=10)
    by_onnx = search(onnx_feats, queries, topk=10)
    for row in range(len(queries)):
        np.testing.assert_array_equal(by_torch.top(row), by_onnx.top(row))


def test_failed_parity_leaves_no_file(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from idkl_lib.export import cli as export_cli

    out = tmp_path / "model.onnx"
    assert export_cli.main(["--checkpoint", str(trained), "--onnx", str(out), "--tolerance", "1e-30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "max abs diff" in err and "min cosine" in err and "was not written" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_are_one_line_errors_with_exit_2(
    trained: Path, test_feats: Path, sysu_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(main, *argv: str) -> str:  # type: ignore[no-untyped-def]
        assert main(list(argv)) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0, err
        return err

    ckpt, out = str(trained), str(tmp_path / "f.npz")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no images" in run(features_cli.main, "--checkpoint", ckpt, "--images", str(empty), "--out", out)
    bad = tmp_path / "photos" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a jpeg")
    shutil.copy(next((sysu_root / "cam1").rglob("*.jpg")), bad.parent / "good.jpg")
    err = run(features_cli.main, "--checkpoint", ckpt, "--images", str(bad.parent), "--out", out, "--no-progress")
    assert str(bad) in err and "--skip-corrupt" in err
    argv = ["--checkpoint", ckpt, "--images", str(bad.parent), "--out", out, "--skip-corrupt", "--no-progress"]
    assert features_cli.main(argv) == 0
    assert f"skipped {bad}" in capsys.readouterr().err
    kept = FeatureFile.load(out)
    assert len(kept) == 1 and kept.meta["skipped"][0][0] == str(bad)
    # features of another model: another fingerprint and another width
    other = FeatureFile.load(test_feats)
    foreign = FeatureFile(
        other.features,
        other.paths,
        other.pids,
        other.camids,
        other.modalities,
        {**other.meta, "fingerprint": {"config_hash": "0" * 16, "file_hash": "1" * 16}},
    )
    foreign.save(tmp_path / "foreign.npz")
    err = run(search_cli.main, "--gallery", str(test_feats), "--query", str(tmp_path / "foreign.npz"))
    assert other.fingerprint.config_hash in err and "0" * 16 in err
    wide = FeatureFile(
        np.ones((2, 7)), other.paths[:2], other.pids[:2], other.camids[:2], other.modalities[:2], foreign.meta
    )
    wide.save(tmp_path / "wide.npz")
    err = run(search_cli.main, "--gallery", str(test_feats), "--query", str(tmp_path / "wide.npz"))
    assert "7-wide" in err and other.fingerprint.file_hash in err and "1" * 16 in err
    FeatureFile(other.features[:2], other.paths[:2], other.pids[:2], other.camids[:2], other.modalities[:2]).save(
        tmp_path / "bare.npz"
    )
    assert "no model fingerprint" in run(
        search_cli.main, "--gallery", str(test_feats), "--query", str(tmp_path / "bare.npz")
    )
    with pytest.raises(FeatureMismatchError):
        search(other, foreign)
    # a query modality the gallery lacks (infrared queries, cross-modality search, an infrared-only gallery)
    infrared = other.modalities == 1
    ir_only = FeatureFile(
        other.features[infrared],
        tuple(p for p, m in zip(other.paths, infrared, strict=True) if m),
        other.pids[infrared],
        other.camids[infrared],
        other.modalities[infrared],
        other.meta,
    )
    ir_only.save(tmp_path / "ir.npz")
    err = run(search_cli.main, "--gallery", str(tmp_path / "ir.npz"), "--query", str(tmp_path / "ir.npz"))
    assert "needs visible gallery images" in err and "--modality-rule any" in err
    with pytest.raises(SearchError):
        search(ir_only, ir_only)
    assert "not a feature file" in run(search_cli.main, "--gallery", str(bad), "--query", str(bad))


def test_collect_images_reads_lists_and_labels_by_layout(sysu_root: Path, tmp_path: Path) -> None:
    images = sorted((sysu_root / "cam3").rglob("*.jpg"))[:2]
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two infrared images\n{images[0]}\n{images[1]}\n")
    found = collect_images([listing, images[0]])  # a repeated image is kept once
    assert [s.path for s in found.samples] == [str(p) for p in images]
    assert found.layout == "sysu" and {s.modality for s in found.samples} == {1}
    outside = tmp_path / "x.png"
    shutil.copy(images[0], outside)
    unknown = collect_images([outside], modality=0).samples[0]
    assert (unknown.pid, unknown.camid, unknown.modality) == (-1, -1, 0)


def test_query_by_image_in_the_protocol_gallery(trained: Path, sysu_dataset: VIDataset, tmp_path: Path) -> None:
    import datetime

    from idkl_lib.checkpoint import load_trained_model
    from idkl_lib.eval.features import extract_features
    from idkl_lib.eval.views import rank_view
    from idkl_lib.viz.image_query import image_query_box, image_ranklist

    ds = sysu_dataset
    model, cfg, _ = load_trained_model(trained)
    q = extract_features(model, ds.query, cfg.height, cfg.width)
    g = extract_features(model, ds.gallery, cfg.height, cfg.width)
    view = rank_view(ds, q, g)
    fig = image_ranklist(model, view, ds.gallery, g, ds.query[0].path, cfg.height, cfg.width, topk=3)
    texts = [a.text for a in fig.layout.annotations]
    for rank, best in enumerate(view.ranked(0)[:3], start=1):  # the protocol's own ranking of that query
        s = view.gallery[best]
        assert any(f"rank {rank} · d {view.distmat[0, best]:.3g}<br>pid {s.pid} · cam {s.camid}" in t for t in texts)
    assert f"pid {ds.query[0].pid}" in fig.layout.title.text and "all camera rule" in fig.layout.title.text
    box = image_query_box(model, view, ds.gallery, g, cfg.height, cfg.width, topk=3)
    upload = box.children[0].children[1]
    content = Path(ds.query[1].path).read_bytes()
    now = datetime.datetime.now(datetime.timezone.utc)
    upload.value = (
        {
            "name": "mine.jpg",
            "type": "image/jpeg",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": now,
        },
    )
    shown = box.children[-1].outputs[0]["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
    assert "mine.jpg" in shown and "identity unknown" in shown and "no camera rule" in shown
