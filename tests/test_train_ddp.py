"""Distributed training (``torchrun``-style environment, gloo backend on the CPU, loopback only) against one process.

Default (``distributed_batch="global"``): the global batch is the recipe's P x K, each of R processes forwards P/R
identity blocks, every process computes the losses on the gathered global batch, BatchNorm uses global statistics,
and DDP averages the gradients. Tested here against one process on the same batch: every loss term, the all-reduced
gradients, the weights after one Adam step and the BatchNorm running statistics (2 and 4 processes, 120 images,
P=12, K=10), and the whole ``train()`` path (2 processes vs one). Dropout is switched off in these comparisons:
each process draws its own dropout masks, so with dropout the two runs are equal in distribution only.

``distributed_batch="per_process"`` with ``sync_batchnorm=False`` (a labelled deviation: each process its own
P x K batch and losses) is checked against a single-process reference that does by hand what DDP does: per step, for
each rank, it restores that rank's RNG stream, loads the rank's batch (rank ``r`` takes global batches
``r, r + R, ...``), runs forward and backward; then it averages the gradients and takes one Adam step. Rank 1's
BatchNorm updates are undone (DDP broadcasts rank 0's buffers before every forward). (Back-propagating the mean of
the two losses instead would sum some gradient contributions in another order: float rounding that Adam amplifies
into visible differences within a few steps.)
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from idkl_lib.checkpoint import load_checkpoint
from idkl_lib.config import LossWeights, ModelConfig, TrainConfig
from idkl_lib.data import VIDataset
from idkl_lib.data.records import INFRARED, VISIBLE
from idkl_lib.losses import compute_losses
from idkl_lib.models import build_model
from idkl_lib.train.distributed import convert_batchnorm, gather_batch, gather_fields
from idkl_lib.train.loop import CHECKPOINT_NAME, NonFiniteLossError, _epoch_seed, build_loader, lr_factor
from idkl_lib.utils.runtime import seed_everything

from .test_train import tiny_config

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
    """The tiny training run of ``test_train`` (P = 4: 2 identities per rank and step), with a final evaluation."""
    fields: dict[str, Any] = dict(lr=1e-3, log_every=3, channels_last=False, final_eval=True)
    return tiny_config(root, out_dir, **{**fields, **overrides})


def _without_dropout(build: Any) -> Any:
    """``build_model`` whose result has every dropout probability set to 0 (equal masks on every process)."""

    def build_model(*args: Any, **kwargs: Any) -> torch.nn.Module:
        model = build(*args, **kwargs)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        return model

    return build_model


def _worker(
    rank: int,
    port: int,
    cfg: TrainConfig,
    report_dir: str,
    poison: tuple[int, int] | None,
    world: int = WORLD,
    no_dropout: bool = False,
) -> None:
    """One rank: the environment torchrun would set, then ``train()``; records what this rank wrote."""
    import os

    import idkl_lib.train.loop as train_module

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        GLOO_SOCKET_IFNAME="lo",
    )
    torch.set_num_threads(1)
    writes: list[str] = []

    def recording(original: Any) -> Any:
        def write(path: Any, *args: Any, **kwargs: Any) -> Any:
            writes.append(Path(path).name)
            return original(path, *args, **kwargs)

        return write

    if no_dropout:
        train_module.build_model = _without_dropout(train_module.build_model)  # type: ignore[assignment]
    train_module.save_checkpoint = recording(train_module.save_checkpoint)  # type: ignore[assignment]
    train_module.atomic_write_json = recording(train_module.atomic_write_json)  # type: ignore[assignment]
    if poison is not None and poison[0] == rank:  # a NaN loss term on this rank only, at its poison[1]-th step
        import idkl_lib.train.epoch as epoch_module

        original, calls = epoch_module.compute_losses, [0]

        def compute_losses(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
            terms = original(*args, **kwargs)
            calls[0] += 1
            if calls[0] == poison[1]:
                terms["tri_sh"] = terms["tri_sh"] * float("nan")
            return terms

        epoch_module.compute_losses = compute_losses  # type: ignore[assignment]
    report: dict[str, Any] = {"writes": writes}
    try:
        result = train_module.train(cfg, progress=False)
        report.update(state=result.model.state_dict(), history=result.history, metrics=sorted(result.metrics))
    except NonFiniteLossError as exc:
        report.update(error=str(exc), step=exc.step, terms=exc.terms)
    except ValueError as exc:
        report.update(error=str(exc))
    finally:
        dist.destroy_process_group()
        torch.save(report, Path(report_dir) / f"rank{rank}.pt")


def _launch(
    cfg: TrainConfig, report_dir: Path, poison: tuple[int, int] | None = None, no_dropout: bool = False
) -> list[dict[str, Any]]:
    """Run ``train(cfg)`` on ``WORLD`` spawned processes; a run that does not finish in time fails the test."""
    args = (_free_port(), cfg, str(report_dir), poison, WORLD, no_dropout)
    context = mp.spawn(_worker, args=args, nprocs=WORLD, join=False)
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
    local = cfg  # per_process: every rank samples whole P x K batches
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


def test_per_process_batches_match_the_single_process_reference(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path
) -> None:
    cfg = _config(sysu_root, tmp_path / "run", p=2, distributed_batch="per_process", sync_batchnorm=False)
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


# ------------------------------------------------------------------ global batch = the one-process objective

STEP_P, STEP_K = 12, 10  # the SYSU recipe's batch of 120 images
STEP_LR = 1e-3


def _step_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=STEP_P, arch="resnet18", pretrained=False, base_width=4))
    return _without_dropout(lambda: model)()


def _step_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """120 images laid out as the sampler lays them out: 12 identity blocks of 10, infrared/visible alternating."""
    images = torch.randn(STEP_P * STEP_K, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    pids = torch.arange(STEP_P).repeat_interleave(STEP_K)
    modality = torch.tensor([INFRARED, VISIBLE] * (STEP_P * STEP_K // 2))
    return images.to(torch.get_default_dtype()), pids, modality


def _one_step(model: torch.nn.Module, ddp: torch.nn.Module, rank: int, world: int) -> dict[str, Any]:
    """One training step of process ``rank``: forward its identity blocks, losses on the gathered batch, Adam."""
    images, pids, modality = _step_batch()
    rows = slice(rank * len(pids) // world, (rank + 1) * len(pids) // world)
    out = gather_fields(ddp(images[rows], modality[rows]))
    terms = compute_losses(out, gather_batch(pids[rows]), gather_batch(modality[rows]), LossWeights())
    optimizer = torch.optim.Adam(model.parameters(), lr=STEP_LR)
    optimizer.zero_grad(set_to_none=True)
    torch.stack(list(terms.values())).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    return {
        "terms": {name: float(value.detach()) for name, value in terms.items()},
        "grads": grads,
        "state": {name: t.clone() for name, t in model.state_dict().items()},
    }


def _step_worker(rank: int, port: int, world: int, dtype: torch.dtype, report_dir: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        torch.set_default_dtype(dtype)
        model = convert_batchnorm(_step_model(), torch.device("cpu"))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        torch.save(_one_step(model, ddp, rank, world), Path(report_dir) / f"step{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("world", "dtype", "tol"),
    [(2, torch.float64, 1e-5), (4, torch.float64, 1e-5), (2, torch.float32, 1e-3)],
    ids=["2proc-fp64", "4proc-fp64", "2proc-fp32"],
)
def test_global_batch_step_equals_the_one_process_step(
    world: int, dtype: torch.dtype, tol: float, tmp_path: Path
) -> None:
    """Loss terms, all-reduced gradients, weights after one Adam step and BatchNorm running statistics.

    float64 compares the arithmetic (the differences are float64 rounding, about 1e-11 relative); float32 shows the
    size of the reordered float32 sums (up to 5e-4 relative, on the specific tail's first layer3 convolution, whose
    gradient comes through the purifier's gates), hence its looser tolerance.
    """
    context = mp.spawn(_step_worker, args=(_free_port(), world, dtype, str(tmp_path)), nprocs=world, join=False)
    deadline = time.monotonic() + 300
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {world}-process step did not finish within 300 s")
    ranks = [torch.load(tmp_path / f"step{r}.pt", weights_only=False) for r in range(world)]

    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        model = _step_model()
        expected = _one_step(model, model, 0, 1)
    finally:
        torch.set_default_dtype(default)

    for got in ranks:  # every process computed the same global loss ...
        assert got["terms"].keys() == expected["terms"].keys()
        for name, value in expected["terms"].items():
            assert got["terms"][name] == pytest.approx(value, rel=tol, abs=tol), name
        assert got["grads"].keys() == expected["grads"].keys()
        for name, grad in expected["grads"].items():  # ... and holds the one-process gradient after DDP's all-reduce
            error = float((got["grads"][name].double() - grad.double()).norm())
            floor = 1e-10 if dtype == torch.float64 else 1e-6  # gradients that are 0 in exact arithmetic (a bias before
            # a BatchNorm) hold rounding noise of this size
            assert error <= tol * float(grad.double().norm()) + floor, f"{name}: {error:.3g}"
        for name, value in expected["state"].items():  # weights after Adam and global BatchNorm statistics
            if value.is_floating_point():
                # Adam's first step is about lr * sign(g): in float32 an element whose gradient is rounding noise
                # may take either sign, so float32 weights agree to 2 lr there
                atol = 1e-7 if dtype == torch.float64 else 2.5 * STEP_LR
                torch.testing.assert_close(got["state"][name], value, rtol=tol, atol=atol, msg=name)
            else:
                assert torch.equal(got["state"][name], value), name


@pytest.mark.parametrize("preset", ["", "baseline"])
def test_two_process_training_equals_one_process_training(sysu_root: Path, tmp_path: Path, preset: str) -> None:
    """``train()`` on 2 processes (global batch) against ``train()`` in one process, dropout and augmentation off;
    with the recipe's preset and with ``baseline``, whose switched-off heads get no gradient at any step (DDP stopped
    at its second step until those parameters were frozen: ``freeze_unused_parameters``)."""
    presets = {"loss_preset": preset} if preset else {}
    cfg = _config(sysu_root, tmp_path / "run", epochs=1, final_eval=False, augment=False, log_every=1, **presets)
    rank0, rank1 = _launch(cfg, tmp_path, no_dropout=True)

    import idkl_lib.train.loop as train_module

    original = train_module.build_model
    train_module.build_model = _without_dropout(original)  # type: ignore[assignment]
    try:
        torch.set_num_threads(1)
        single = train_module.train(dataclasses.replace(cfg, out_dir=str(tmp_path / "one")), progress=False)
    finally:
        train_module.build_model = original  # type: ignore[assignment]

    assert len(single.history) > 1
    for report in (rank0, rank1):  # both processes logged the global batch's losses, equal to one process's
        assert [row["step"] for row in report["history"]] == [row["step"] for row in single.history]
        # step 1 is the same arithmetic up to float32 reordering; from step 2 on, Adam amplifies that rounding (a
        # sign flip on a noise-level gradient moves a weight by up to 2 lr), so later steps are not compared here:
        # the exact comparison of a step is the test above
        got, want = report["history"][0], single.history[0]
        for name in want.keys() - {"lr", "step", "epoch"}:
            assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-5), name
    parameters = [name for name, _ in single.model.named_parameters()]
    differ = [n for n in parameters if not torch.equal(rank0["state"][n], rank1["state"][n])]
    assert not differ, differ
    if preset:  # the heads without gradient never moved, here or there: equal to the one process's to the bit
        single_state = {n: p.detach().cpu() for n, p in single.model.named_parameters()}
        untouched = [n for n in parameters if torch.equal(rank0["state"][n], single_state[n])]
        assert any(".classifier" not in n and "bottleneck" not in n for n in untouched), untouched
        assert len(single.history) > 2  # past the step where DDP used to stop


def test_p_not_divisible_by_the_processes_names_the_values_that_work(sysu_root: Path, tmp_path: Path) -> None:
    cfg = _config(sysu_root, tmp_path / "run", p=3)
    report = _launch(cfg, tmp_path)
    for rank in report:
        assert "p=3" in rank["error"] and "(1, 3)" in rank["error"]


def test_readme_torchrun_example_runs_on_two_processes(sysu_root: Path, tmp_path: Path) -> None:
    """The README's multi-GPU command, run as written through torchrun, with 2 CPU processes and tiny sizes."""
    import shlex
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    args = shlex.split(next(line for line in readme.splitlines() if line.startswith("torchrun ")))
    assert args[:3] == ["torchrun", "--nproc_per_node", "4"] and args[3:5] == ["-m", "idkl_lib.train"]
    options = args[5:]
    options[options.index("--data-root") + 1] = str(sysu_root)
    options[options.index("--out-dir") + 1] = str(tmp_path / "run")
    options[options.index("--ids-per-batch") + 1] = "4"  # the tiny data set has few identities
    options[options.index("--images-per-id") + 1] = "4"
    tiny = ["--arch", "resnet18", "--base-width", "8", "--pretrained", "false", "--height", "32", "--width", "32"]
    tiny += ["--epochs", "1", "--num-workers", "0", "--device", "cpu", "--no-progress", "--final-eval", "false"]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master-port",
               str(_free_port()), "-m", "idkl_lib.train", *options, *tiny]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    saved = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert saved["epoch"] == 1 and saved["config"]["p"] == 4 and saved["config"]["distributed_batch"] == "global"


def test_readme_two_node_torchrun_equals_one_process(sysu_root: Path, tmp_path: Path) -> None:
    """The README's multi-node command as two "nodes" on this machine (two torchrun agents, one process each, c10d
    rendezvous on 127.0.0.1): the first step's losses equal those of one process (``python -m idkl_lib.train``),
    augmentation off. The modality discriminator and confuser terms are left out of the comparison: their heads' dropout
    draws other masks on each process (the whole-objective comparison without dropout is the in-process test above)."""
    import shlex
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    args = shlex.split(next(line for line in readme.splitlines() if line.startswith("torchrun --nnodes")))
    assert args[1:3] == ["--nnodes", "2"] and args[args.index("--rdzv-backend") + 1] == "c10d"
    launcher, options = args[1 : args.index("-m")], args[args.index("-m") + 2 :]
    launcher[launcher.index("--nproc_per_node") + 1] = "1"
    launcher[launcher.index("--rdzv-endpoint") + 1] = f"127.0.0.1:{_free_port()}"
    options[options.index("--data-root") + 1] = str(sysu_root)
    options[options.index("--ids-per-batch") + 1] = "4"
    options[options.index("--images-per-id") + 1] = "4"
    out = options.index("--out-dir") + 1
    tiny = ["--arch", "resnet18", "--base-width", "8", "--pretrained", "false", "--height", "32", "--width", "32",
            "--epochs", "1", "--num-workers", "0", "--device", "cpu", "--no-progress", "--final-eval", "false",
            "--augment", "false", "--log-every", "1"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    options[out] = str(tmp_path / "two")
    nodes = [
        subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "idkl_lib.train",
                          *options, *tiny], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for _ in range(2)
    ]  # fmt: skip
    options[out] = str(tmp_path / "one")
    single = subprocess.run([sys.executable, "-m", "idkl_lib.train", *options, *tiny], capture_output=True, text=True,
                            timeout=600, env=env)  # fmt: skip
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    assert all(node.returncode == 0 for node in nodes), "\n".join(log[-3000:] for log in logs)
    assert single.returncode == 0, single.stderr[-3000:]
    two, one = (load_checkpoint(tmp_path / name / CHECKPOINT_NAME) for name in ("two", "one"))
    assert two["config"]["p"] == 4 and two["epoch"] == 1
    got, want = two["extra"]["history"][0], one["extra"]["history"][0]
    assert got.keys() == want.keys() and got["step"] == want["step"] == 1
    compared = {name for name in want if not any(part in name for part in ("disc", "confuser", "total", "lr", "step"))}
    assert {"id", "tri_sh", "tgsa_inter", "csa1_inter"} <= compared
    for name in compared - {"epoch"}:
        assert got[name] == pytest.approx(want[name], rel=1e-4, abs=1e-5), name
