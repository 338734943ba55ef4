"""The vectorised IDKL loss block against the naive per-sample loops of ``idkl_lib/testing/naive_losses.py``.

Inputs: a random :class:`~idkl_lib.models.IDKLOutput` of one SYSU-MM01 batch, B = 120 (P = 12 identities x K = 10,
infrared / visible interleaved), 2048-d features, C = 395 classes. Both sides compute every term of the ``sysu``
preset (docs/method.md#38-total-objective-and-weight-presets) and backpropagate to the output tensors:

* ``vectorised``: ``sum(idkl_lib.losses.compute_losses(out, pids, modality, LossWeights.preset("sysu")).values())``;
* ``naive``: ``idkl_lib.testing.naive_losses.naive_objective(out, pids, modality, distalign=True)`` (the reference
  transcribed with loops over samples and identities).

Before timing, the two are checked to agree (total and every input gradient) in float64 with ``assert_close``'s
float64 tolerances, and the float32 difference is reported. Then the whole block is timed forward + backward and
forward only, and each term separately (forward + backward; the vectorised side through ``compute_losses`` with only
that term switched on, so each includes the one batch-layout check), to show where the time goes.

The number of aten kernels the vectorised block dispatches (forward + backward) is counted too: on a GPU each is a
launch, so it bounds the loss block's launch overhead there.

Goal: the vectorised block is >= 20x faster than the naive loops on CPU (forward + backward, float32).
``--quick``: B = 8 (2 x 4), 64-d features, 10 classes. ``naive_objective`` follows the reference's ``B == 120`` weight
switch, so a batch of another size is compared under the ``small_batch`` preset instead of ``sysu``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor
from torch.testing import assert_close

from benchmarks._common import PeakMemory, base_parser, count_dispatched_ops, measure, ratio, setup, write_result
from idkl_lib.config import LossWeights
from idkl_lib.losses import compute_losses
from idkl_lib.models import IDKLOutput
from idkl_lib.testing.naive_losses import (
    naive_ce,
    naive_centroid_loss,
    naive_entropy_margin,
    naive_objective,
    naive_pseudo,
    naive_skl,
    naive_sm_skl,
    naive_soft_dist,
    naive_triplet,
    rows,
)

NAME = "bench_losses"
SPEEDUP_GOAL = 20.0
FEATURES = (
    "feat_sh",
    "feat_sp",
    "bn_sh",
    "bn_sp",
    "ip_feat_raw",
    "ip_feat_raw_gated",
    "ip_feat_in",
    "ip_feat_in_gated",
)
LOGITS = ("logits_sh", "logits_sp", "ip_logits_raw", "ip_logits_raw_gated")


def make_inputs(
    p: int, k: int, dim: int, num_classes: int, dtype: torch.dtype, device: torch.device, seed: int
) -> tuple[IDKLOutput, Tensor, Tensor]:
    """A random model output (positive features, like GeM of ReLU maps) and labels in the sampler layout."""
    gen = torch.Generator().manual_seed(seed)
    b = p * k

    def t(*shape: int, positive: bool = False) -> Tensor:
        x = torch.randn(*shape, generator=gen, dtype=torch.float64)
        return (x.abs() if positive else x).to(device=device, dtype=dtype).requires_grad_()

    fields = {f: t(b, dim, positive=True) for f in FEATURES}
    fields |= {f: t(b, num_classes) for f in LOGITS}
    out = IDKLOutput(**fields, disc_logits=t(b, 2), confuser_logits=t(b, 2))
    pids = (torch.randperm(num_classes, generator=gen)[:p]).repeat_interleave(k).to(device)
    modality = torch.tensor([1, 0]).repeat(b // 2).to(device)
    return out, pids, modality


def leaves(out: IDKLOutput) -> list[Tensor]:
    return [getattr(out, f.name) for f in dataclasses.fields(out)]


def cast(out: IDKLOutput, dtype: torch.dtype) -> IDKLOutput:
    """A copy of ``out`` in ``dtype`` whose tensors are fresh leaves requiring grad."""
    return IDKLOutput(
        **{f.name: getattr(out, f.name).detach().to(dtype).requires_grad_() for f in dataclasses.fields(out)}
    )


def preset_for(batch_size: int) -> str:
    """The preset ``naive_objective`` reproduces: it switches weights on ``B == 120`` as the reference does."""
    return "sysu" if batch_size == 120 else "small_batch"


def naive_terms(out: IDKLOutput, pids: Tensor, sub: Tensor) -> dict[str, Callable[[], Tensor]]:
    """Each term of :func:`preset_for`, weighted, from the naive functions (their sum is ``naive_objective``)."""
    w = LossWeights.preset(preset_for(pids.numel()))
    z, zs = out.logits_sh, out.logits_sp

    def v(x: Tensor) -> Tensor:
        return rows(x, sub, 0)

    def i(x: Tensor) -> Tensor:
        return rows(x, sub, 1)

    def sd(x: Tensor) -> Tensor:
        return naive_soft_dist(x)

    def cross() -> Tensor:
        sh_v, sh_i = v(out.feat_sh), i(out.feat_sh)
        half = sh_v.size(0) // 2
        return sd(torch.cat([sh_v[:half], sh_i[:half]]))

    def intra_cross() -> Tensor:
        c = cross()
        return naive_skl(sd(v(out.feat_sh)), c) + naive_skl(c, sd(i(out.feat_sh)))

    return {
        "id": lambda: w.id * naive_ce(z, pids),
        "id_sp": lambda: w.id_sp * naive_ce(zs, pids),
        "tri_sh": lambda: w.tri_sh * naive_triplet(out.feat_sh, pids, 1.3),
        "tri_sp": lambda: w.tri_sp * naive_triplet(out.feat_sp, pids, 1.3),
        "ip_entropy": lambda: w.ip_entropy * naive_entropy_margin(out.ip_logits_raw, out.ip_logits_raw_gated),
        "ip_centroid": lambda: w.ip_centroid * naive_centroid_loss(out.ip_feat_in, out.ip_feat_in_gated, pids, sub),
        "tgsa_inter": lambda: (
            w.tgsa_inter
            * (naive_skl(sd(v(out.feat_sh)), sd(v(out.feat_sp))) + naive_skl(sd(i(out.feat_sh)), sd(i(out.feat_sp))))
        ),
        "tgsa_intra": lambda: w.tgsa_intra * naive_skl(sd(v(out.feat_sh)), sd(i(out.feat_sh))),
        "tgsa_intra_cross": lambda: w.tgsa_intra_cross * intra_cross(),
        "csa1_inter": lambda: w.csa1_inter * (naive_skl(v(z), v(zs)) + naive_skl(i(z), i(zs))),
        "csa1_intra": lambda: w.csa1_intra * naive_skl(v(z), i(z)),
        "csa2_inter": lambda: w.csa2_inter * (naive_sm_skl(v(z), v(zs), pids) + naive_sm_skl(i(z), i(zs), pids)),
        "csa2_intra": lambda: w.csa2_intra * naive_sm_skl(v(z), i(z), pids),
        "disc": lambda: w.disc * naive_ce(out.disc_logits, sub),
        "confuser": lambda: w.confuser * naive_ce(out.confuser_logits, naive_pseudo(sub).to(sub.device)),
    }


def fwd_bwd(loss_fn: Callable[[], Tensor], out: IDKLOutput) -> Callable[[], None]:
    tensors = leaves(out)

    def run() -> None:
        for x in tensors:
            x.grad = None
        loss_fn().backward()

    return run


def fwd_only(loss_fn: Callable[[], Tensor]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            loss_fn()

    return run


def check_agreement(out: IDKLOutput, pids: Tensor, sub: Tensor) -> dict[str, float]:
    """Vectorised vs naive: total and every input gradient in float64 (asserted) and float32 (reported)."""
    report: dict[str, float] = {}
    for dtype in (torch.float64, torch.float32):
        a, b = cast(out, dtype), cast(out, dtype)
        weights = LossWeights.preset(preset_for(pids.numel()))
        total_a = torch.stack(list(compute_losses(a, pids, sub, weights).values())).sum()
        total_b = naive_objective(b, pids, sub, distalign=True)
        total_a.backward()
        total_b.backward()
        grads = [(x.grad, y.grad) for x, y in zip(leaves(a), leaves(b), strict=True) if y.grad is not None]
        if dtype == torch.float64:
            assert_close(total_a, total_b)
            for ga, gb in grads:
                assert_close(ga, gb)
        name = "float64" if dtype == torch.float64 else "float32"
        report[f"{name}_total_vectorised"] = float(total_a.detach())
        report[f"{name}_total_naive"] = float(total_b.detach())
        report[f"{name}_total_rel_diff"] = float(((total_a - total_b).abs() / total_b.abs().clamp_min(1e-30)).detach())
        report[f"{name}_grad_max_rel_diff"] = max(
            float((ga - gb).abs().max() / gb.abs().max().clamp_min(1e-30)) for ga, gb in grads
        )
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--p", type=int, default=None, help="identities per batch (12)")
    parser.add_argument("--k", type=int, default=None, help="images per identity (10)")
    parser.add_argument("--dim", type=int, default=None, help="feature width (2048)")
    parser.add_argument("--num-classes", type=int, default=None, help="identity classes (395)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="dtype of the timed runs")
    parser.add_argument("--no-per-term", action="store_true", help="skip the per-term breakdown")
    args = parser.parse_args(argv)
    defaults = {"p": 2, "k": 4, "dim": 64, "num_classes": 10} if args.quick else {
        "p": 12, "k": 10, "dim": 2048, "num_classes": 395,
    }  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args, repeats=2 if args.quick else 7, warmup=1)
    dtype = getattr(torch, args.dtype)
    out64, pids, sub = make_inputs(args.p, args.k, args.dim, args.num_classes, torch.float64, device, args.seed)
    agreement = check_agreement(out64, pids, sub)
    print(
        f"[{NAME}] agreement: float64 total rel diff {agreement['float64_total_rel_diff']:.2e} (asserted), "
        f"float32 total rel diff {agreement['float32_total_rel_diff']:.2e}, "
        f"float32 grad max rel diff {agreement['float32_grad_max_rel_diff']:.2e}"
    )

    out_vec, out_naive = cast(out64, dtype), cast(out64, dtype)
    preset = preset_for(args.p * args.k)
    weights = LossWeights.preset(preset)

    def vectorised() -> Tensor:
        return torch.stack(list(compute_losses(out_vec, pids, sub, weights).values())).sum()

    def naive() -> Tensor:
        return naive_objective(out_naive, pids, sub, distalign=True)

    whole = measure(
        {
            "vectorised_fwd_bwd": fwd_bwd(vectorised, out_vec),
            "naive_fwd_bwd": fwd_bwd(naive, out_naive),
            "vectorised_fwd": fwd_only(vectorised),
            "naive_fwd": fwd_only(naive),
        },
        repeats=args.repeats,
        warmup=args.warmup,
        device=device,
    )
    speedup = ratio(whole["naive_fwd_bwd"], whole["vectorised_fwd_bwd"])
    speedup_fwd = ratio(whole["naive_fwd"], whole["vectorised_fwd"])

    per_term: dict[str, dict[str, object]] = {}
    if not args.no_per_term:
        naive_fns = naive_terms(out_naive, pids, sub)
        for term in weights.active():
            only = weights.only(term)

            def vec_term(only: LossWeights = only, term: str = term) -> Tensor:
                return compute_losses(out_vec, pids, sub, only)[term]

            t = measure(
                {"vectorised": fwd_bwd(vec_term, out_vec), "naive": fwd_bwd(naive_fns[term], out_naive)},
                repeats=max(2, args.repeats // 2),
                warmup=1,
                device=device,
            )
            with torch.no_grad():
                a64, b64 = cast(out64, torch.float64), cast(out64, torch.float64)
                value_vec = compute_losses(a64, pids, sub, only)[term]
                value_naive = naive_terms(b64, pids, sub)[term]()
            assert_close(value_vec, value_naive)
            per_term[term] = {
                "vectorised": t["vectorised"].as_dict(),
                "naive": t["naive"].as_dict(),
                "speedup": ratio(t["naive"], t["vectorised"]),
            }
        total_vec_terms = sum(v["vectorised"]["median_s"] for v in per_term.values())  # type: ignore[index]
        for v in per_term.values():
            v["share_of_vectorised_terms"] = v["vectorised"]["median_s"] / total_vec_terms  # type: ignore[index]

    ops = {"vectorised_fwd_bwd": count_dispatched_ops(fwd_bwd(vectorised, out_vec))}
    if args.p * args.k <= 16:  # the naive loops dispatch tens of thousands of scalar ops; counted at small sizes only
        ops["naive_fwd_bwd"] = count_dispatched_ops(fwd_bwd(naive, out_naive))
    with PeakMemory(device) as mem_vec:
        fwd_bwd(vectorised, out_vec)()
    with PeakMemory(device) as mem_naive:
        fwd_bwd(naive, out_naive)()

    met = speedup["ratio_of_medians"] >= SPEEDUP_GOAL
    verdict = "not assessed at --quick sizes" if args.quick else ("met" if met else "NOT met")
    slowest = ""
    if per_term:
        worst = min(per_term, key=lambda n: per_term[n]["speedup"]["ratio_of_medians"])  # type: ignore[index]
        costliest = max(per_term, key=lambda n: per_term[n]["share_of_vectorised_terms"])  # type: ignore[arg-type]
        slowest = (
            f"; lowest per-term speedup: {worst} "
            f"({per_term[worst]['speedup']['ratio_of_medians']:.1f}x), largest share of the vectorised time: "  # type: ignore[index]
            f"{costliest} ({100 * per_term[costliest]['share_of_vectorised_terms']:.0f}%)"  # type: ignore[operator]
        )
    summary = (
        f"B={args.p * args.k} ({args.p}x{args.k}), D={args.dim}, C={args.num_classes}, {args.dtype}, "
        f"{device.type}: vectorised {whole['vectorised_fwd_bwd'].median * 1e3:.3g} ms vs naive "
        f"{whole['naive_fwd_bwd'].median * 1e3:.4g} ms fwd+bwd -> {speedup['ratio_of_medians']:.1f}x faster "
        f"(paired {speedup['paired_min']:.1f}-{speedup['paired_max']:.1f}; fwd only "
        f"{speedup_fwd['ratio_of_medians']:.1f}x) (goal >= {SPEEDUP_GOAL:.0f}x: {verdict}); "
        f"the vectorised block dispatches {ops['vectorised_fwd_bwd']['kernels']} kernels (fwd+bwd){slowest}"
    )
    results = {
        "agreement": agreement,
        "timings": {name: t.as_dict() for name, t in whole.items()},
        "speedup_fwd_bwd": speedup,
        "speedup_fwd": speedup_fwd,
        "per_term_fwd_bwd": per_term,
        "memory": {"vectorised_fwd_bwd": mem_vec.as_dict(), "naive_fwd_bwd": mem_naive.as_dict()},
        "dispatched_ops": ops,
    }
    settings = {
        "p": args.p,
        "k": args.k,
        "batch": args.p * args.k,
        "dim": args.dim,
        "num_classes": args.num_classes,
        "dtype": args.dtype,
        "loss_preset": preset,
    }
    goal = {
        "speedup_at_least": SPEEDUP_GOAL,
        "speedup": speedup["ratio_of_medians"],
        "met": None if args.quick else met,
    }
    write_result(args, NAME, device, settings, results, summary, goal)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
