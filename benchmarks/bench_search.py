"""Search time per query of :func:`idkl_lib.search.search` on a gallery of synthetic feature vectors.

The gallery is ``--gallery-size`` random L2-normalised vectors of width ``--dim`` (2,048: the ResNet-50 layout's
feature) with random identities, cameras and modalities, written to a feature file and read back; the queries are
``--queries`` more such vectors (infrared), so the default cross-modality rule keeps the visible half of the gallery.

Measured (interleaved):

* ``search``: ``search(gallery, queries, topk=10)`` + every query's top-10 list (``SearchResult.as_records``, what the
  command line writes): distances, rules and ranking; reported per query;
* ``single``: one query alone against the same gallery (the gallery's normalised features are cached by the feature
  file, as in a notebook that searches it repeatedly);
* ``argsort``: the baseline, a full stable ``numpy.argsort`` of every query's distance row (the ranking alone);
* ``load``: reading the gallery's ``.npz`` feature file;
* ``rerank``: the same search with k-reciprocal re-ranking on a ``--rerank-gallery`` subset (its memory grows with
  the square of the gallery).

CPU default: 10,000 x 2,048 gallery, 100 queries, re-ranking on 2,000. ``--quick``: 500 x 64, 8 queries, 200.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._common import base_parser, measure, ratio, setup, write_result
from idkl_lib.features import FeatureFile
from idkl_lib.search import search

NAME = "bench_search"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--gallery-size", type=int, default=None, help="gallery vectors (default 10,000)")
    parser.add_argument("--dim", type=int, default=None, help="feature width (default 2,048)")
    parser.add_argument("--queries", type=int, default=None, help="queries per search (default 100)")
    parser.add_argument("--rerank-gallery", type=int, default=None, help="gallery size of the re-ranked search (2,000)")
    args = parser.parse_args(argv)
    defaults = (
        {"gallery_size": 500, "dim": 64, "queries": 8, "rerank_gallery": 200}
        if args.quick
        else {"gallery_size": 10_000, "dim": 2048, "queries": 100, "rerank_gallery": 2000}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def synthetic_features(n: int, dim: int, rng: np.random.Generator, modality: int | None = None) -> FeatureFile:
    """``n`` random unit vectors with random labels (500 identities, 6 cameras), one model fingerprint."""
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    modalities = rng.integers(0, 2, n) if modality is None else np.full(n, modality)
    meta = {"fingerprint": {"config_hash": "bench", "file_hash": "bench"}, "feature": "shared", "flip": False}
    paths = tuple(f"/synthetic/{i:06d}.jpg" for i in range(n))
    return FeatureFile(feats, paths, rng.integers(0, 500, n), rng.integers(1, 7, n), modalities, meta)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args, repeats=3 if args.quick else 5, warmup=1)
    rng = np.random.default_rng(args.seed)
    gallery = synthetic_features(args.gallery_size, args.dim, rng)
    queries = synthetic_features(args.queries, args.dim, rng, modality=1)
    small = synthetic_features(args.rerank_gallery, args.dim, rng)
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        path = gallery.save(Path(tmp) / "gallery.npz")
        size_mib = path.stat().st_size / 2**20

        def run_search() -> object:
            return search(gallery, queries, topk=10).as_records()

        distmat = search(gallery, queries, topk=10).distmat
        one = FeatureFile(
            queries.features[:1],
            queries.paths[:1],
            queries.pids[:1],
            queries.camids[:1],
            queries.modalities[:1],
            queries.meta,
        )
        fns = {
            "search": run_search,
            "single": lambda: search(gallery, one, topk=10).as_records(),
            "argsort": lambda: np.argsort(distmat, axis=1, kind="stable"),
            "load": lambda: FeatureFile.load(path),
        }
        timings = measure(fns, repeats=args.repeats, warmup=args.warmup, device=device)
        rerank = measure(
            {"rerank": lambda: search(small, queries, topk=10, rerank=True).as_records()},
            repeats=max(1, args.repeats // 2),
            warmup=0,
            device=device,
        )["rerank"]
    per_query_ms = 1e3 * timings["search"].median / args.queries
    single_ms = 1e3 * timings["single"].median
    rerank_ms = 1e3 * rerank.median / args.queries
    results = {
        "timings": {name: t.as_dict() for name, t in timings.items()},
        "rerank": rerank.as_dict(),
        "search_ms_per_query": per_query_ms,
        "single_query_ms": single_ms,
        "rerank_ms_per_query": rerank_ms,
        "search_over_argsort_time": ratio(timings["search"], timings["argsort"]),
        "gallery_file_mib": size_mib,
        "load_s": timings["load"].median,
    }
    summary = (
        f"gallery {args.gallery_size} x {args.dim}, {args.queries} queries, top-10, {device.type}: "
        f"{per_query_ms:.3g} ms per query in a batch of {args.queries} "
        f"({results['search_over_argsort_time']['ratio_of_medians']:.2f}x a bare stable argsort of the rows), "
        f"{single_ms:.3g} ms for one query alone; loading the {size_mib:.0f} MiB feature file "
        f"{timings['load'].median:.3g} s; "
        f"with re-ranking on {args.rerank_gallery} gallery vectors {rerank_ms:.3g} ms per query"
    )
    settings = {
        "gallery_size": args.gallery_size,
        "dim": args.dim,
        "queries": args.queries,
        "topk": 10,
        "rerank_gallery": args.rerank_gallery,
        "rules": "cross-modality (infrared queries, half the gallery visible), no camera rule",
    }
    write_result(args, NAME, device, settings, results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
