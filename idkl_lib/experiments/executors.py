"""Where a sweep's cells run: each cell in a process of its own, on this machine or on a Slurm cluster.

The sweep (:mod:`idkl_lib.experiments.sweep`) defines the cells, decides which to run (``--resume``) and alone
writes ``sweep.json`` and the results; an executor runs the cells it is given and reports each one's start and end
back to it (two callbacks, always called from the coordinator's own thread, so concurrent cells never write the
sweep's files at once). Every executor runs a cell through :func:`run_cell`, which calls
:func:`~idkl_lib.pipeline.run.run_pipeline` with the sweep's arguments and records the cell's own state in
``<cell>/cell.json`` (read when the coordinator did not see the cell end: a Slurm job, a killed coordinator).

* ``local`` (:class:`LocalExecutor`): up to ``jobs`` cells at a time (``--jobs``; default one, or one per GPU on a
  GPU machine), each ``python -m idkl_lib.experiments.executors TASK`` with its output in ``<cell>/cell.log``. With
  more than one cell at a time the CPU threads are divided between them (``OMP_NUM_THREADS`` and the like; an
  explicit ``cpu_threads`` parameter still wins), and each cell sees ``gpus_per_cell`` GPUs of its own through
  ``CUDA_VISIBLE_DEVICES``. A cell process ends with the coordinator (it is sent SIGTERM and records itself
  interrupted).
* ``slurm`` (:mod:`idkl_lib.experiments.cluster`): the cells as one Slurm job array through submitit (``pip
  install 'idkl-lib[cluster]'``), logs in ``<sweep>/submitit/``. A preempted or timed-out cell is requeued and
  continues with the pipeline's resume (finished steps skipped, notebook 02 continuing its checkpoint).
* ``submitit-local``: the same submitit path with submitit's local executor (tests, CI, a workstation).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from idkl_lib.runs import CELL_LOG_NAME, CELL_STATE_NAME, read_cell_state
from idkl_lib.utils.io import atomic_write_json
from idkl_lib.utils.lock import lock_holder, lock_path

__all__ = [
    "EXECUTOR_KEYS",
    "EXECUTOR_KINDS",
    "CellTask",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "run_cell",
    "visible_devices",
]

EXECUTOR_KINDS = ("local", "slurm", "submitit-local")
EXECUTOR_KEYS = (
    "kind",
    "jobs",
    "gpus_per_cell",
    "partition",
    "time_min",
    "cpus_per_cell",
    "mem_gb",
    "sbatch",
    "array_parallelism",
)
"""The ``executor:`` keys of an experiment file (the command-line options of the same names override them)."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

Callback = Callable[["CellTask", dict[str, Any]], None]


class ExecutorError(ValueError):
    """Settings no executor can honour (``--jobs 0``, more GPUs per cell than the machine has, submitit missing) or
    a submission the cluster refused (the message quotes sbatch)."""


@dataclass(frozen=True)
class CellTask:
    """Everything a cell's process needs (picklable, and JSON for the local executor's command line).

    Attributes:
        sweep_dir: The sweep folder (absolute); the cell writes ``<sweep_dir>/<name>/``.
        name: The cell's name.
        digest: The cell's parameter hash (``sweep.json``), recorded in ``cell.json``.
        params: The parameters handed to the pipeline: fixed, then the cell's grid values.
        preset: The pipeline preset.
        steps: The pipeline steps to run.
        notebooks_dir: The notebooks folder (absolute).
        kernel_name: Jupyter kernel.
        log_output: Stream the notebooks' output (into the cell's log).
        resume: Skip steps that finished with the same parameters (``--resume``, and a requeued Slurm job).
        env: Environment variables of this cell (threads, ``CUDA_VISIBLE_DEVICES``), set before anything runs.
    """

    sweep_dir: str
    name: str
    digest: str
    params: dict[str, Any]
    preset: str | None
    steps: tuple[str, ...]
    notebooks_dir: str
    kernel_name: str = "python3"
    log_output: bool = False
    resume: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @property
    def cell_dir(self) -> Path:
        """``<sweep_dir>/<name>``."""
        return Path(self.sweep_dir) / self.name

    def to_json(self) -> str:
        """The task as one JSON string (:meth:`from_json` reads it back)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CellTask:
        """The task written by :meth:`to_json`."""
        data = json.loads(text)
        data["steps"] = tuple(data["steps"])
        return cls(**data)


class Executor(Protocol):
    """Runs cells and reports them: ``started(task, info)`` when a cell is handed over (``info``: ``pid``,
    ``job_id``, ``log``, ``devices``), ``finished(task, outcome)`` when it ended (``outcome``: ``state`` done / failed
    / interrupted, ``error``, ``log``, ``duration_s``). Both are called from the caller's thread."""

    kind: str
    waits: bool
    """False when :meth:`run` returns after submitting (the cells then report through ``cell.json``)."""

    def describe(self) -> str:
        """One line: where and how many cells at a time."""
        ...

    def run(self, sweep_dir: Path, tasks: Sequence[CellTask], started: Callback, finished: Callback) -> None:
        """Run ``tasks``; an interruption stops the running cells (recorded interrupted) and propagates."""
        ...


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------------------ the cell itself


def _job_id() -> str | None:
    """The submitit job id (``123_4`` for an array task) when this process is a submitit job."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # noqa: BLE001 - a missing variable only loses the id in cell.json
        return None


def _clear_own_stale_lock(cell_dir: Path) -> None:
    """Remove the cell folder's lock when a previous attempt of this very cell left it (a preempted Slurm job
    killed on another node leaves a marker whose holder cannot be checked from here). Only one attempt of a cell
    runs at a time: the coordinator submits a cell again only once its job has ended."""
    previous, holder = read_cell_state(cell_dir, on_error="ignore") or {}, lock_holder(cell_dir)
    if holder is None or holder.alive is True or previous.get("state") == "done":
        return
    if holder.pid == previous.get("pid") and holder.host == previous.get("host"):
        lock_path(cell_dir).unlink(missing_ok=True)


def run_cell(task: CellTask) -> dict[str, Any]:
    """Run one cell: :func:`~idkl_lib.pipeline.run.run_pipeline` into ``<sweep>/<cell>/`` with the sweep's arguments,
    recording the cell's state in ``cell.json`` before and after. The entry point of every executor.

    Returns:
        The cell record (``state`` ``"done"``).

    Raises:
        Whatever the pipeline raised (recorded as ``failed``, or ``interrupted`` for an interruption, first).
    """
    os.environ.update(task.env)
    cpus = os.environ.get("SLURM_CPUS_PER_TASK")
    if cpus and os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, cpus)
    cell_dir = task.cell_dir
    cell_dir.mkdir(parents=True, exist_ok=True)
    _clear_own_stale_lock(cell_dir)
    record: dict[str, Any] = {
        "state": "running",
        "hash": task.digest,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "job_id": _job_id(),
        "resume": task.resume,
        "started": _now(),
        "finished": None,
        "error": None,
    }
    atomic_write_json(cell_dir / CELL_STATE_NAME, record)
    start = time.perf_counter()
    try:
        from idkl_lib.pipeline.run import run_pipeline

        run_pipeline(
            cell_dir,
            preset=task.preset,
            params=task.params,
            notebooks_dir=task.notebooks_dir,
            resume=task.resume,
            kernel_name=task.kernel_name,
            only=list(task.steps),
            log_output=task.log_output,
            verbose=True,
        )
    except BaseException as exc:
        stopped = isinstance(exc, KeyboardInterrupt | SystemExit)
        record.update(state="interrupted" if stopped else "failed", error=f"{type(exc).__name__}: {exc}")
        record.update(finished=_now(), duration_s=round(time.perf_counter() - start, 3))
        atomic_write_json(cell_dir / CELL_STATE_NAME, record)
        raise
    record.update(state="done", finished=_now(), duration_s=round(time.perf_counter() - start, 3))
    atomic_write_json(cell_dir / CELL_STATE_NAME, record)
    return record


def _outcome(task: CellTask, ended: str, log: str | None, duration: float, attempt: str | int | None) -> dict[str, Any]:
    """A finished cell's outcome from its ``cell.json`` (written by the attempt ``attempt``: pid or job id), or,
    when that attempt recorded no end, from how its process or job ended (``ended``)."""
    record = read_cell_state(task.cell_dir) or {}
    own = record.get("hash") == task.digest and attempt in (record.get("pid"), record.get("job_id"), None)
    where = f" (log: {log})" if log else ""
    if own and record.get("state") == "done":
        return {"state": "done", "error": None, "log": log, "duration_s": round(duration, 3)}
    if own and record.get("state") in ("failed", "interrupted") and record.get("error"):
        state, error = record["state"], f"{record['error']}{where}"
    else:
        state, error = "failed", f"{ended}{where}"
    return {"state": state, "error": error, "log": log, "duration_s": round(duration, 3)}


# ------------------------------------------------------------------------------------------------- this machine


def visible_devices() -> list[str]:
    """The CUDA devices this process may use (``CUDA_VISIBLE_DEVICES`` entries, or ``0..n-1``); ``[]`` without."""
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # noqa: BLE001 - no usable CUDA: no devices
        count = 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()][:count]
    return [str(i) for i in range(count)]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the cell process gets SIGTERM when the coordinator dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _Slots:
    """CPU threads and GPUs divided between ``jobs`` concurrent cells."""

    def __init__(self, jobs: int | None, gpus_per_cell: int | None, devices: Sequence[str] | None, flag: str) -> None:
        self.devices = list(visible_devices() if devices is None else devices)
        have = f"{len(self.devices)} GPU(s) ({','.join(self.devices)})" if self.devices else "no GPU"
        if jobs is not None and jobs < 1:
            raise ExecutorError(f"{flag} {jobs}: give at least 1 cell at a time")
        if gpus_per_cell is not None and gpus_per_cell < 0:
            raise ExecutorError(f"--gpus-per-cell {gpus_per_cell}: give 0 (cells share the GPUs) or more")
        gpus = (1 if self.devices else 0) if gpus_per_cell is None else gpus_per_cell
        if gpus > len(self.devices):
            raise ExecutorError(
                f"--gpus-per-cell {gpus}: this machine has {have} visible; give at most {len(self.devices)}"
            )
        fit = len(self.devices) // gpus if gpus else None
        if jobs is not None and fit is not None and jobs > fit:
            raise ExecutorError(
                f"{flag} {jobs} with --gpus-per-cell {gpus} needs {jobs * gpus} GPUs; this machine has {have}: "
                f"give {flag} {fit} or fewer, or --gpus-per-cell 0 to let cells share the GPUs"
            )
        self.jobs, self.gpus = (jobs or fit or 1), gpus
        self.free = list(self.devices)
        self.threads = max(1, len(os.sched_getaffinity(0)) // self.jobs)

    def take(self) -> tuple[list[str], dict[str, str]]:
        """A cell's devices and environment."""
        devices, self.free = self.free[: self.gpus], self.free[self.gpus :]
        env = {name: str(self.threads) for name in THREAD_VARIABLES} if self.jobs > 1 else {}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        return devices, env

    def give(self, devices: Sequence[str]) -> None:
        self.free.extend(devices)

    def describe(self) -> str:
        per = f", {self.gpus} GPU(s) each" if self.gpus else ""
        threads = f", {self.threads} CPU thread(s) each" if self.jobs > 1 else ""
        return f"{self.jobs} cell(s) at a time{per}{threads}"


class LocalExecutor:
    """Up to ``jobs`` cells at once on this machine, each in its own process (module docstring).

    Args:
        jobs: Cells at a time; None: one per ``gpus_per_cell`` GPUs, or 1 without GPUs.
        gpus_per_cell: GPUs per cell (``CUDA_VISIBLE_DEVICES``); None: 1 on a GPU machine, else 0.
        devices: The GPUs to divide (default: :func:`visible_devices`).

    Raises:
        ExecutorError: ``jobs < 1``, or more GPUs than the machine has.
    """

    kind = "local"
    waits = True

    def __init__(
        self, jobs: int | None = None, gpus_per_cell: int | None = None, devices: Sequence[str] | None = None
    ) -> None:
        self.slots = _Slots(jobs, gpus_per_cell, devices, "--jobs")

    def describe(self) -> str:
        return f"local, {self.slots.describe()}"

    def _spawn(self, task: CellTask) -> tuple[subprocess.Popen[bytes], Path]:
        import idkl_lib

        log_path = task.cell_dir / CELL_LOG_NAME
        task.cell_dir.mkdir(parents=True, exist_ok=True)
        package_root = str(Path(idkl_lib.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, **task.env, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1"}
        with log_path.open("ab") as log:
            log.write(f"=== cell {task.name} started {_now()} (resume={task.resume})\n".encode())
            log.flush()
            process = subprocess.Popen(
                [sys.executable, "-m", "idkl_lib.experiments.executors", task.to_json()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        return process, log_path

    def run(self, sweep_dir: Path, tasks: Sequence[CellTask], started: Callback, finished: Callback) -> None:
        queue = list(tasks)
        running: dict[subprocess.Popen[bytes], tuple[CellTask, list[str], float, Path]] = {}
        try:
            while queue or running:
                while queue and len(running) < self.slots.jobs:
                    devices, env = self.slots.take()
                    task = queue.pop(0)
                    task = dataclasses.replace(task, env={**task.env, **env})
                    process, log = self._spawn(task)
                    running[process] = (task, devices, time.perf_counter(), log)
                    started(task, {"pid": process.pid, "log": str(log), "devices": devices})
                for process in [p for p in running if p.poll() is not None]:
                    task, devices, start, log = running.pop(process)
                    self.slots.give(devices)
                    code = process.returncode
                    ended = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                    finished(task, _outcome(task, ended, str(log), time.perf_counter() - start, process.pid))
                time.sleep(0.2 if running else 0)
        except BaseException:
            _stop(running)
            for process, (task, _devices, start, log) in running.items():
                outcome = _outcome(task, "stopped with the sweep", str(log), time.perf_counter() - start, process.pid)
                finished(task, {**outcome, "state": "interrupted"} if outcome["state"] != "done" else outcome)
            raise


def _stop(running: Sequence[subprocess.Popen[bytes]] | dict[subprocess.Popen[bytes], Any], grace: float = 60) -> None:
    """SIGTERM the running cell processes (they record themselves interrupted), SIGKILL after ``grace`` s."""
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _cell_main(argv: Sequence[str] | None = None) -> int:
    """``python -m idkl_lib.experiments.executors TASK_JSON``: one cell (the local executor's process); SIGTERM
    is an interruption (recorded), exit status 0 done, 1 failed, 130 interrupted."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m idkl_lib.experiments.executors TASK_JSON (started by the sweep)", file=sys.stderr)
        return 2

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, interrupt)
    task = CellTask.from_json(args[0])
    try:
        run_cell(task)
    except KeyboardInterrupt:
        print(f"cell {task.name} interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - the traceback goes to the cell's log; cell.json holds the one line
        import traceback

        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_cell_main())
