"""Stand-in notebooks for the sweep tests: a ``02_train`` that really trains (a seeded torch model, a checkpoint per
epoch, ``resume="auto"`` continuing it, like notebook 02) in well under a second, and a ``03_evaluate`` that turns
its result into SYSU-shaped metrics for notebook 06. ``IDKL_TEST_CELL_EVENT=<event>:<cell>`` makes one cell's first
attempt misbehave: ``kill`` (its cell process is SIGKILLed), ``preempt`` (its process gets Slurm's preemption signal,
SIGUSR2, after the first epoch) or ``sleep`` (it waits until ``<sweep>/release`` exists)."""

from __future__ import annotations

import shutil
from pathlib import Path

PROTOCOL = "sysu/all-search/single-shot"
NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"

TRAIN = """
import json, os, pathlib, signal, time
import torch
step, cell = pathlib.Path(step_dir), pathlib.Path(run_dir)
step.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(cpu_threads)
event, _, target = os.environ.get("IDKL_TEST_CELL_EVENT", "").partition(":")
first_attempt = target == cell.name and not (step / "event-done").exists()
if first_attempt:
    (step / "event-done").write_text(event)
if first_attempt and event == "kill":
    os.kill(os.getppid(), signal.SIGKILL)
    os._exit(1)
if first_attempt and event == "sleep":
    parent = os.getppid()
    while not (cell.parent / "release").exists():
        if os.getppid() != parent:  # the cell process is gone: so is this attempt
            os._exit(1)
        time.sleep(0.1)
torch.manual_seed(seed)
w, start, history = torch.randn(16, 4, dtype=torch.float64), 0, []
checkpoint = step / "checkpoint.pt"
if resume == "auto" and checkpoint.exists():
    state = torch.load(checkpoint)
    w, start, history = state["w"], state["epoch"], state["history"]
lr = 0.2 if loss_preset == "full" else 0.1
for epoch in range(start, epochs):
    g = torch.Generator().manual_seed(1000 * seed + epoch)
    x = torch.randn(256, 16, generator=g, dtype=torch.float64)
    w.requires_grad_(True)
    loss = ((x @ w).tanh().sum(1) - x[:, :4].sum(1)).pow(2).mean()
    loss.backward()
    with torch.no_grad():
        w = (w - lr * w.grad).detach()
    history.append({"epoch": epoch + 1.0, "step": epoch + 1.0, "lr": lr, "id": loss.item(), "total": loss.item()})
    torch.save({"w": w, "epoch": epoch + 1, "history": history}, checkpoint)
    if first_attempt and event == "preempt" and epoch == 0:
        parent = os.getppid()
        os.kill(parent, signal.SIGUSR2)
        while os.getppid() == parent:
            time.sleep(0.1)
        os._exit(1)
(step / "history.json").write_text(json.dumps(history))
metrics = {"loss_preset": loss_preset, "epochs_run": epochs - start, "resumed_from": start,
           "result": {"R1": 50.0 + float(w.abs().sum()), "loss": history[-1]["total"]},
           "env": {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}}
(step / "metrics.json").write_text(json.dumps(metrics))
"""

EVALUATE = """
import json, pathlib
step = pathlib.Path(step_dir); step.mkdir(parents=True, exist_ok=True)
r1 = json.loads((pathlib.Path(run_dir) / "02_train" / "metrics.json").read_text())["result"]["R1"]
row = {"R1": r1, "mAP": r1 - 10, "mINP": r1 - 20, "num_queries": 8}
(step / "metrics.json").write_text(json.dumps({"protocols": {"@P": row}, "cmc": {"@P": [r1, 90.0, 100.0]}}))
""".replace("@P", PROTOCOL)


def parameter_notebook(path: Path, params: dict[str, object], body: str) -> None:
    """A notebook of two cells: a ``parameters`` cell declaring ``params``, then ``body``."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    source = "\n".join(f"{name} = {value!r}  # {name}" for name, value in params.items())
    nb = new_notebook(cells=[new_code_cell(source, metadata={"tags": ["parameters"]}), new_code_cell(body)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def write_standins(folder: Path) -> Path:
    """``folder`` with the stand-in 02 and 03 and the real notebook 06."""
    folder.mkdir(parents=True, exist_ok=True)
    common = {"run_dir": "x", "step_dir": "x", "loss_preset": "sysu", "seed": 0, "epochs": 3, "resume": "",
              "cpu_threads": 1}  # fmt: skip
    parameter_notebook(folder / "02_train.ipynb", common, TRAIN)
    parameter_notebook(folder / "03_evaluate.ipynb", common, EVALUATE)
    shutil.copy(NOTEBOOKS_DIR / "06_compare_runs.ipynb", folder)
    return folder
