"""Distributed training (``torchrun``-style environment, gloo backend on the CPU, loopback only) against a
single-process reference that does by hand what DDP does.

With ``R = 2`` processes, the sampler gives each rank ``P / R`` identities per step (rank ``r`` takes global batches
``r, r + R, ...`` of a ``P / R`` sampler), each rank runs forward and backward on its own sub-batch, DDP averages the
gradients and every rank applies the same Adam step. BatchNorm statistics are per rank, and DDP broadcasts rank 0's
buffers (BatchNorm running statistics) before every forward, so the checkpointed buffers are rank 0's. Each rank
re-seeds its RNG per epoch from ``(seed, epoch, rank)`` and loads its images (``num_workers=0``) with that RNG, which
also draws its dropout masks. The reference replays exactly that: per step, for each rank, it restores that rank's
RNG stream, loads the rank's sub-batch, runs forward and backward; then it averages the two gradients and takes one
Adam step. Rank 1's BatchNorm updates are undone (DDP overwrites them with rank 0's). (Back-propagating the mean of
the two losses instead would sum some gradient contributions in another order: float rounding that Adam amplifies
into visible differences within a few steps.)
"""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from idkl_lib.checkpoint import load_checkpoint
from idkl_lib.config import TrainConfig
from idkl_lib.data import VIDataset
from idkl_lib.losses import compute_losses
from idkl_lib.models import build_model
from idkl_lib.train import CHECKPOINT_NAME, NonFiniteLossError, _epoch_seed, build_loader, lr_factor
from idkl_lib.utils.runtime import seed_everything

pytestmark = pytest.mark.slow

WORLD = 2
SYSU_PROTOCOLS = {
    "sysu/all-search/single-shot",
    "sysu/all-search/multi-shot",
    "sysu/indoor-search/single-shot",
    "sysu/indoor-search/multi-shot",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(root: Path, out_dir: Path, **overrides: Any) -> TrainConfig:
    fields: dict[str, Any] = dict(
        dataset="sysu",
        data_root=str(root),
        arch="resnet18",
        base_width=8,
        pretrained=False,
        height=32,
        width=32,
        p=4,  # 2 identities per rank and step
        k=4,
        epochs=2,
        milestones=(1,),
        lr=1e-3,
        num_workers=0,
        device="cpu",
        out_dir=str(out_dir),
        log_every=3,
        deterministic=True,
        channels_last=False,
        final_eval=True,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def _worker(rank: int, port: int, cfg: TrainConfig, report_dir: str, poison: tuple[int, int] | None) -> None:
    """One rank: the environment torchrun would set, then ``train()``; records what this rank wrote."""
    import os

    import idkl_lib.train as train_module

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        GLOO_SOCKET_IFNAME="lo",
    )
    torch.set_num_threads(1)
    writes: list[str] = []

    def recording(original: Any) -> Any:
        def write(path: Any, *args: Any, **kwargs: Any) -> Any:
            writes.append(Path(path).name)
            return original(path, *args, **kwargs)

        return write

    train_module.save_checkpoint = recording(train_module.save_checkpoint)  # type: ignore[assignment]
    train_module.atomic_write_json = recording(train_module.atomic_write_json)  # type: ignore[assignment]
    if poison is not None and poison[0] == rank:  # a NaN loss term on this rank only, at its poison[1]-th step
        original, calls = train_module.compute_losses, [0]

        def compute_losses(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
            terms = original(*args, **kwargs)
            calls[0] += 1
            if calls[0] == poison[1]:
                terms["tri_sh"] = terms["tri_sh"] * float("nan")
            return terms

        train_module.compute_losses = compute_losses  # type: ignore[assignment]
    report: dict[str, Any] = {"writes": writes}
    try:
        result = train_module.train(cfg, progress=False)
        report.update(state=result.model.state_dict(), history=result.history, metrics=sorted(result.metrics))
    except NonFiniteLossError as exc:
        report.update(error=str(exc), step=exc.step, terms=exc.terms)
    finally:
        dist.destroy_process_group()
        torch.save(report, Path(report_dir) / f"rank{rank}.pt")


def _launch(cfg: TrainConfig, report_dir: Path, poison: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Run ``train(cfg)`` on ``WORLD`` spawned processes; a run that does not finish in time fails the test."""
    context = mp.spawn(_worker, args=(_free_port(), cfg, str(report_dir), poison), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the distributed run did not finish within 300 s (a rank waits for the other?)")
    return [torch.load(report_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _reference(cfg: TrainConfig, dataset: VIDataset) -> tuple[dict[str, torch.Tensor], list[list[float]]]:
    """One process doing what the ranks do together; returns the state dict and the per-step ``[loss_0, loss_1]``."""
    seed_everything(cfg.seed, deterministic=True)
    model = build_model(cfg.model_config(dataset.num_train_ids))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = cfg.loss_weights()
    local = dataclasses.replace(cfg, p=cfg.p // WORLD)
    buffer_names = [name for name, _ in model.named_buffers()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    losses_per_step: list[list[float]] = []
    for epoch in range(cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(epoch, cfg)
        loaders = [build_loader(local, dataset, epoch, rank, WORLD) for rank in range(WORLD)]
        assert len({len(loader) for loader in loaders}) == 1
        streams = []  # each rank's global RNG, seeded as train() seeds it
        for rank in range(WORLD):
            torch.manual_seed(_epoch_seed(cfg, epoch, rank))
            streams.append(torch.get_rng_state())
        batches = [iter(loader) for loader in loaders]
        model.train()
        for _ in range(len(loaders[0])):
            losses: list[float] = []
            gradients: list[list[torch.Tensor]] = []
            rank0_buffers: dict[str, torch.Tensor] = {}
            for rank in range(WORLD):
                torch.set_rng_state(streams[rank])  # this rank's augmentations and dropout masks
                images, pids, _cams, modality, _idx = next(batches[rank])
                out = model(images, modality)
                streams[rank] = torch.get_rng_state()
                if rank == 0:
                    rank0_buffers = {name: model.get_buffer(name).clone() for name in buffer_names}
                loss = torch.stack(list(compute_losses(out, pids, modality, weights).values())).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # each rank back-propagates its own loss ...
                gradients.append([torch.zeros_like(p) if p.grad is None else p.grad for p in trainable])
                losses.append(float(loss.detach()))
            for index, p in enumerate(trainable):  # ... and DDP all-reduces the gradients divided by the world size
                p.grad = gradients[0][index] / WORLD + gradients[1][index] / WORLD
            optimizer.step()
            with torch.no_grad():  # DDP replaces the other ranks' BatchNorm statistics by rank 0's before each forward
                for name, value in rank0_buffers.items():
                    model.get_buffer(name).copy_(value)
            losses_per_step.append(losses)
    return model.state_dict(), losses_per_step


def test_two_processes_match_the_single_process_reference(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path
) -> None:
    cfg = _config(sysu_root, tmp_path / "run")
    rank0, rank1 = _launch(cfg, tmp_path)
    torch.set_num_threads(1)
    expected_state, expected_losses = _reference(cfg, sysu_dataset)

    # rank 0 alone writes: the checkpoint after every epoch, then metrics.json
    assert rank0["writes"] == [CHECKPOINT_NAME] * cfg.epochs + ["metrics.json"]
    assert rank1["writes"] == []
    assert rank0["metrics"] == sorted(SYSU_PROTOCOLS) and rank1["metrics"] == []
    saved = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert saved["epoch"] == cfg.epochs and saved["step"] == len(expected_losses)
    assert all(torch.equal(saved["model_state"][name], t) for name, t in rank0["state"].items())

    parameters = {name for name, _ in build_model(cfg.model_config(sysu_dataset.num_train_ids)).named_parameters()}
    assert all(torch.equal(rank0["state"][name], rank1["state"][name]) for name in parameters)  # DDP keeps them equal
    assert rank0["state"].keys() == expected_state.keys()
    far = {
        name: float((rank0["state"][name].double() - expected.double()).abs().max())
        for name, expected in expected_state.items()
        if expected.is_floating_point() and not torch.allclose(rank0["state"][name], expected, rtol=1e-5, atol=1e-5)
    }
    assert not far, f"rank 0 differs from the reference: {far}"
    assert all(
        torch.equal(rank0["state"][name], t) for name, t in expected_state.items() if not t.is_floating_point()
    )  # num_batches_tracked: rank 0's batches only

    # each rank logged the loss of its own sub-batch
    for rank, report in enumerate((rank0, rank1)):
        assert [row["step"] for row in report["history"]] == list(range(1, len(expected_losses) + 1))
        logged = [row["total"] for row in report["history"]]
        assert logged == pytest.approx([pair[rank] for pair in expected_losses], rel=1e-5, abs=1e-5)
    # ... and the two sub-batches really differ (the sampler shards the batches)
    assert all(a != b for a, b in expected_losses)


def test_nan_on_one_rank_stops_every_rank_at_the_same_step(sysu_root: Path, tmp_path: Path) -> None:
    cfg = _config(sysu_root, tmp_path / "run", final_eval=False)
    rank0, rank1 = _launch(cfg, tmp_path, poison=(1, 2))  # rank 1's loss term tri_sh is NaN at step 2
    assert (rank1["step"], rank1["terms"]) == (2, ["tri_sh"])
    assert (rank0["step"], rank0["terms"]) == (2, ["(on another process)"])
    assert "no checkpoint was written yet" in rank0["error"]
    assert rank0["writes"] == rank1["writes"] == []
    assert not (tmp_path / "run" / CHECKPOINT_NAME).exists()
