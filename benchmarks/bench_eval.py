"""Evaluation cost: the SYSU-MM01 10-trial protocol at its real size, and ``evaluate_rank`` as the gallery grows,
each against a plain per-query loop evaluator written here.

SYSU-MM01 all-search (docs/method.md#53-sysu-mm01-protocol) at the real test-set size: 3,803 infrared queries of 96
identities in cameras 3 and 6; visible gallery images in cameras 1, 2, 4, 5 with 301 (camera, identity) pairs, so a
trial's gallery holds 301 images (single-shot) or 3,010 (multi-shot); 10 trials chosen by a ``rand_perm_cam.mat`` table
written with :func:`idkl_lib.data.write_rand_perm_cam` into a temporary folder (the dataset's records have fake paths;
no image is read). Features: 2,048-d random vectors, 0.2 x an identity centre + unit noise (all-search single-shot R1
about 40%).

* ``library``: :func:`idkl_lib.eval.evaluate_sysu` (features -> mean metrics of the 10 trials);
* ``loop``: the same protocol written plainly: its own trial selection from the table, L2 normalisation, one distance
  matrix per trial, then for each query a numpy ``argsort``, the same-camera rule (query camera 3 counts as 2), and
  CMC (first match) / AP / INP from the kept list.

The timed runs use float32 features (what ``extract_features`` returns); float32 distances computed in a different
order can swap near-tied gallery items, so the metrics are compared with a small tolerance there, and exactly
(``1e-9``) on a float64 run.

``evaluate_rank`` scaling: Q x G distance matrices (default 1,000^2, 3,000^2 and 10,000^2; 6 cameras, 10 gallery
images per identity), ``evaluate_rank`` on the whole matrix against the loop on the first ``--loop-queries`` queries,
extrapolated linearly to all Q (the loop's cost is linear in Q); both must give identical metrics on those queries.

``--quick``: 200 queries of 12 identities, 60 gallery pairs, 3 trials; scaling sizes 300 and 600.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._common import base_parser, measure, ratio, setup, traced_peak_mib, write_result
from idkl_lib.data import Sample, VIDataset, read_rand_perm_cam, write_rand_perm_cam
from idkl_lib.eval import evaluate_rank, evaluate_sysu

NAME = "bench_eval"
GALLERY_CAMS = (1, 2, 4, 5)
QUERY_CAMS = (3, 6)
MAX_RANK = 20


# ------------------------------------------------------------------------------------------------ synthetic SYSU
@dataclass
class SysuCase:
    dataset: VIDataset
    perm_table: dict[tuple[int, int], np.ndarray]
    query_feats: np.ndarray
    gallery_feats: np.ndarray


def make_sysu(
    root: Path,
    num_ids: int,
    num_queries: int,
    num_pairs: int,
    dim: int,
    num_trials: int,
    rng: np.random.Generator,
    min_images: int = 10,
    max_images: int = 30,
    signal_scale: float = 0.2,
) -> SysuCase:
    """A SYSU-MM01-shaped test set with fake image paths and a ``rand_perm_cam.mat`` written to ``root``."""
    pids = np.sort(rng.choice(np.arange(1, 534), size=num_ids, replace=False))
    pairs = [(c, int(p)) for c in GALLERY_CAMS for p in pids]
    chosen = sorted(pairs[i] for i in rng.choice(len(pairs), size=num_pairs, replace=False))
    gallery: list[Sample] = []
    table: dict[tuple[int, int], np.ndarray] = {}
    for cam, pid in chosen:
        n = int(rng.integers(min_images, max_images + 1))
        gallery += [Sample(f"/fake/sysu/cam{cam}/{pid:04d}/{j:04d}.jpg", pid, cam, 0) for j in range(1, n + 1)]
        table[(cam, pid)] = np.stack([rng.permutation(n) + 1 for _ in range(num_trials)])
    q_pairs = [(c, int(p)) for p in pids for c in QUERY_CAMS if rng.random() < 0.8 or c == QUERY_CAMS[0]]
    counts = 1 + rng.multinomial(num_queries - len(q_pairs), np.full(len(q_pairs), 1 / len(q_pairs)))
    query: list[Sample] = []
    for (cam, pid), n in zip(q_pairs, counts, strict=True):
        query += [Sample(f"/fake/sysu/cam{cam}/{pid:04d}/{j:04d}.jpg", pid, cam, 1) for j in range(1, int(n) + 1)]
    perm_path = write_rand_perm_cam(root / "exp" / "rand_perm_cam.mat", table)
    dataset = VIDataset(
        name="sysu",
        root=root,
        train=(),
        query=tuple(query),
        gallery=tuple(gallery),
        num_train_ids=0,
        meta={"rand_perm_cam": str(perm_path)},
    )
    centers = {int(p): rng.standard_normal(dim) for p in pids}

    def feats(records: Sequence[Sample]) -> np.ndarray:
        signal = np.stack([centers[s.pid] for s in records])
        return (signal_scale * signal + rng.standard_normal((len(records), dim))).astype(np.float32)

    return SysuCase(dataset, read_rand_perm_cam(perm_path), feats(query), feats(gallery))


# ---------------------------------------------------------------------------------------------- loop evaluator
def loop_rank(
    dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_cams: np.ndarray, g_cams: np.ndarray
) -> dict[str, float | np.ndarray | int]:
    """Per-query loop: argsort, drop every same-camera gallery item, CMC (first match), AP, INP."""
    cmc = np.zeros(MAX_RANK)
    ap_sum = inp_sum = 0.0
    valid = 0
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        keep = g_cams[order] != q_cams[i]
        matches = g_pids[order][keep] == q_pids[i]
        hits = np.flatnonzero(matches)
        if hits.size == 0:
            continue
        valid += 1
        if hits[0] < MAX_RANK:
            cmc[hits[0] :] += 1
        ap_sum += float(np.mean(np.arange(1, hits.size + 1) / (hits + 1)))
        inp_sum += hits.size / (hits[-1] + 1)
    return {"cmc": cmc / valid, "mAP": ap_sum / valid, "mINP": inp_sum / valid, "num_queries": valid}


def loop_sysu(case: SysuCase, shots: int, num_trials: int, dtype: type[np.floating]) -> dict[str, float]:
    """The SYSU all-search protocol with a per-query loop; mean metrics over the trials (fractions)."""
    ds = case.dataset
    index = {(s.camid, s.pid, int(Path(s.path).stem)): i for i, s in enumerate(ds.gallery)}
    q_pids = np.array([s.pid for s in ds.query])
    q_cams = np.array([2 if s.camid == 3 else s.camid for s in ds.query])
    g_pids = np.array([s.pid for s in ds.gallery])
    g_cams = np.array([s.camid for s in ds.gallery])
    q = case.query_feats.astype(dtype)
    g = case.gallery_feats.astype(dtype)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    g = g / np.linalg.norm(g, axis=1, keepdims=True)
    trials = []
    for t in range(num_trials):
        sel = sorted(
            index[(cam, pid, int(n))]
            for (cam, pid), perm in case.perm_table.items()
            if cam in GALLERY_CAMS
            for n in perm[t, :shots]
            if (cam, pid, int(n)) in index
        )
        gs = g[sel]
        sq = (q * q).sum(1)[:, None] + (gs * gs).sum(1)[None, :] - 2.0 * (q @ gs.T)
        dist = np.sqrt(np.maximum(sq, 1e-12))
        trials.append(loop_rank(dist, q_pids, g_pids[sel], q_cams, g_cams[sel]))
    return mean_metrics(trials)


def mean_metrics(trials: Sequence[dict[str, float | np.ndarray | int]]) -> dict[str, float]:
    cmc = np.mean([t["cmc"] for t in trials], axis=0)
    return {
        "R1": float(cmc[0]),
        "R5": float(cmc[4]),
        "R10": float(cmc[9]),
        "R20": float(cmc[19]),
        "mAP": float(np.mean([t["mAP"] for t in trials])),
        "mINP": float(np.mean([t["mINP"] for t in trials])),
    }


def library_metrics(result: object) -> dict[str, float]:
    return result.mean.as_dict(percent=False)  # type: ignore[attr-defined]


def max_abs_diff(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) for k in a)


# ------------------------------------------------------------------------------------------------------- scaling
def make_rank_case(num_q: int, num_g: int, rng: np.random.Generator, dim: int = 64) -> tuple[np.ndarray, ...]:
    """A (Q, G) float32 Euclidean distance matrix with 10 gallery images per identity and 6 cameras."""
    num_ids = max(2, num_g // 10)
    g_pids = np.repeat(np.arange(num_ids), int(np.ceil(num_g / num_ids)))[:num_g]
    q_pids = rng.integers(0, num_ids, size=num_q)
    centers = rng.standard_normal((num_ids, dim)).astype(np.float32)
    q = centers[q_pids] + 1.5 * rng.standard_normal((num_q, dim)).astype(np.float32)
    g = centers[g_pids] + 1.5 * rng.standard_normal((num_g, dim)).astype(np.float32)
    sq = (q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * (q @ g.T)
    dist = np.sqrt(np.maximum(sq, 1e-12, out=sq), out=sq)
    return dist, q_pids, g_pids, rng.integers(1, 7, size=num_q), rng.integers(1, 7, size=num_g)


def rank_as_dict(result: object) -> dict[str, float]:
    return result.as_dict(percent=False)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--dim", type=int, default=2048, help="feature width of the SYSU case")
    parser.add_argument("--trials", type=int, default=None, help="SYSU gallery trials (10)")
    parser.add_argument("--sizes", type=int, nargs="*", default=None, help="scaling sizes Q = G (1000 3000 10000)")
    parser.add_argument("--loop-queries", type=int, default=None, help="queries the loop runs in the scaling case")
    args = parser.parse_args(argv)
    if args.trials is None:
        args.trials = 3 if args.quick else 10
    if args.sizes is None:
        args.sizes = [300, 600] if args.quick else [1000, 3000, 10000]
    if args.loop_queries is None:
        args.loop_queries = 100 if args.quick else 1000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device != "cpu":
        print(f"[{NAME}] evaluation runs in numpy on the CPU; --device {args.device} only moves the distance matmul")
    device = setup(args, repeats=2 if args.quick else 5, warmup=1)
    rng = np.random.default_rng(args.seed)
    sizes = {"num_ids": 12, "num_queries": 200, "num_pairs": 40} if args.quick else {
        "num_ids": 96, "num_queries": 3803, "num_pairs": 301,
    }  # fmt: skip
    results: dict[str, object] = {}
    summaries: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        case = make_sysu(Path(tmp), dim=args.dim, num_trials=args.trials, rng=rng, **sizes)
        if args.device == "cuda":
            import torch

            q_in, g_in = torch.from_numpy(case.query_feats).cuda(), torch.from_numpy(case.gallery_feats).cuda()
        else:
            q_in, g_in = case.query_feats, case.gallery_feats
        sysu: dict[str, object] = {
            "num_queries": len(case.dataset.query),
            "num_gallery_records": len(case.dataset.gallery),
            "num_ids": sizes["num_ids"],
            "gallery_pairs": sizes["num_pairs"],
        }
        for shots, label in ((1, "single_shot"), (10, "multi_shot")):

            def library(shots: int = shots) -> object:
                return evaluate_sysu(
                    case.dataset,
                    q_in,
                    g_in,
                    "all",
                    shots,
                    args.trials,
                    perm_table=case.perm_table,
                    max_rank=MAX_RANK,
                    cmc_mode="first_match",  # the loop's convention
                )

            def loop(shots: int = shots) -> dict[str, float]:
                return loop_sysu(case, shots, args.trials, np.float32)

            timings = measure(
                {"library": library, "loop": loop}, repeats=args.repeats, warmup=args.warmup, device=device
            )
            lib32, loop32 = library_metrics(library()), loop()
            lib64 = library_metrics(
                evaluate_sysu(
                    case.dataset,
                    case.query_feats.astype(np.float64),
                    case.gallery_feats.astype(np.float64),
                    "all",
                    shots,
                    args.trials,
                    perm_table=case.perm_table,
                    max_rank=MAX_RANK,
                    cmc_mode="first_match",
                )
            )
            loop64 = loop_sysu(case, shots, args.trials, np.float64)
            diff32, diff64 = max_abs_diff(lib32, loop32), max_abs_diff(lib64, loop64)
            assert diff64 <= 1e-9, f"float64 metrics differ by {diff64}: library {lib64} vs loop {loop64}"
            assert diff32 <= 1e-3, f"float32 metrics differ by {diff32}: library {lib32} vs loop {loop32}"
            trials = evaluate_sysu(case.dataset, q_in, g_in, "all", shots, args.trials, perm_table=case.perm_table)
            speed = ratio(timings["loop"], timings["library"])
            sysu[label] = {
                "gallery_sizes": trials.settings["gallery_sizes"],
                "library": timings["library"].as_dict(),
                "loop": timings["loop"].as_dict(),
                "speedup": speed,
                "metrics_library_float32": lib32,
                "metrics_loop_float32": loop32,
                "max_abs_diff_float32": diff32,
                "max_abs_diff_float64": diff64,
                "peak_numpy_mib": {"library": traced_peak_mib(library), "loop": traced_peak_mib(loop)},
            }
            gsize = trials.settings["gallery_sizes"][0]  # type: ignore[index]
            line = (
                f"SYSU all-search {label.replace('_', '-')} (Q={len(case.dataset.query)}, G={gsize}/trial, "
                f"{args.trials} trials): evaluate_sysu {timings['library'].median:.3g} s vs loop "
                f"{timings['loop'].median:.3g} s -> {speed['ratio_of_medians']:.1f}x; metrics equal "
                f"(max |diff| float64 {diff64:.1e}, float32 {diff32:.1e}); R1 {100 * lib32['R1']:.2f} "
                f"mAP {100 * lib32['mAP']:.2f}"
            )
            print(f"[{NAME}] {line}")
            summaries.append(line)
        results["sysu_all_search"] = sysu

    scaling = []
    for n in args.sizes:
        dist, q_pids, g_pids, q_cams, g_cams = make_rank_case(n, n, rng)
        sub = min(args.loop_queries, n)
        lib_t = measure(
            {
                "library": lambda d=dist, a=(q_pids, g_pids, q_cams, g_cams): evaluate_rank(
                    d, *a, max_rank=MAX_RANK, cmc_mode="first_match"
                )
            },
            repeats=max(1, min(args.repeats, 3)),
            warmup=1 if n < 5000 else 0,
            device="cpu",
        )["library"]
        start = time.perf_counter()
        loop_res = loop_rank(dist[:sub], q_pids[:sub], g_pids, q_cams[:sub], g_cams)
        loop_s = time.perf_counter() - start
        lib_sub = rank_as_dict(
            evaluate_rank(
                dist[:sub], q_pids[:sub], g_pids, q_cams[:sub], g_cams, max_rank=MAX_RANK, cmc_mode="first_match"
            )
        )
        loop_m = mean_metrics([loop_res])
        diff = max_abs_diff(lib_sub, loop_m)
        assert diff <= 1e-9, f"evaluate_rank and the loop differ by {diff} at {n}x{n}"
        loop_full = loop_s * n / sub
        peak = traced_peak_mib(
            lambda d=dist, a=(q_pids, g_pids, q_cams, g_cams): evaluate_rank(d, *a, cmc_mode="first_match")
        )
        row = {
            "num_query": n,
            "num_gallery": n,
            "library": lib_t.as_dict(),
            "loop_queries_run": sub,
            "loop_seconds_on_subset": loop_s,
            "loop_seconds_extrapolated": loop_full,
            "extrapolated": sub < n,
            "speedup_vs_extrapolated_loop": loop_full / lib_t.median,
            "max_abs_metric_diff_on_subset": diff,
            "library_peak_numpy_mib": peak,
            "distmat_mib": dist.nbytes / 2**20,
        }
        scaling.append(row)
        print(
            f"[{NAME}] evaluate_rank {n}x{n}: {lib_t.median:.3g} s vs loop {loop_full:.3g} s "
            f"({'extrapolated from ' + str(sub) + ' queries' if sub < n else 'all queries'}) -> "
            f"{loop_full / lib_t.median:.1f}x; peak numpy {peak:.0f} MiB (distmat {dist.nbytes / 2**20:.0f} MiB)"
        )
        del dist
    results["evaluate_rank_scaling"] = scaling
    if len(scaling) >= 2:
        a, b = scaling[0], scaling[-1]
        growth = b["library"]["median_s"] / a["library"]["median_s"]  # type: ignore[index]
        cells = (b["num_query"] * b["num_gallery"]) / (a["num_query"] * a["num_gallery"])  # type: ignore[operator]
        results["library_growth"] = {"time_ratio": growth, "cells_ratio": cells}
        summaries.append(
            f"evaluate_rank {a['num_query']}^2 -> {b['num_query']}^2: time x{growth:.1f} for x{cells:.0f} cells; "
            f"{b['num_query']}^2 {b['library']['median_s']:.3g} s vs loop {b['loop_seconds_extrapolated']:.3g} s "  # type: ignore[index]
            f"({b['speedup_vs_extrapolated_loop']:.1f}x)"
        )
    settings = {
        "sysu_sizes": sizes,
        "dim": args.dim,
        "trials": args.trials,
        "feature_dtype_timed": "float32",
        "scaling_sizes": args.sizes,
        "loop_queries": args.loop_queries,
        "max_rank": MAX_RANK,
        "cmc_mode": "first_match",
    }
    write_result(args, NAME, device, settings, results, "; ".join(summaries))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
