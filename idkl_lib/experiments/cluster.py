"""Sweep cells on a Slurm cluster through submitit (``--executor slurm``), or through submitit's local executor
(``--executor submitit-local``: exactly the same path, run on this machine; the tests use it).

The grid's cells are submitted as one job array (``map_array``); each array task runs
:func:`~idkl_lib.experiments.executors.run_cell` in the shared sweep folder, its logs in ``<sweep>/submitit/<job>/``.
On preemption or at the time limit Slurm signals the job (USR2, ``signal_delay_s`` before the end); submitit then
calls :meth:`CellRunner.checkpoint`, which requeues the same cell with ``resume`` on: the pipeline skips finished steps
and notebook 02 continues its last checkpoint (``resume="auto"``, set by the sweep). submitit is an optional
dependency: ``pip install 'idkl-lib[cluster]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from idkl_lib.experiments.executors import (
    EXECUTOR_KEYS,
    EXECUTOR_KINDS,
    Callback,
    CellTask,
    Executor,
    ExecutorError,
    LocalExecutor,
    _outcome,
    _Slots,
    run_cell,
)
from idkl_lib.runs import SUBMITIT_DIR

__all__ = ["INSTALL_HINT", "SLURM_ENDED", "CellRunner", "SubmititExecutor", "job_ended", "make_executor"]

INSTALL_HINT = "pip install 'idkl-lib[cluster]' (or: pip install submitit)"


class CellRunner:
    """The callable submitit pickles: runs a cell; ``checkpoint`` (called by submitit on preemption or timeout)
    requeues the same cell with ``resume`` on, so finished steps are skipped and training continues its
    checkpoint."""

    def __call__(self, task: CellTask) -> dict[str, Any]:
        return run_cell(task)

    def checkpoint(self, task: CellTask) -> Any:
        """The submission submitit requeues: this cell, resumed."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, dataclasses.replace(task, resume=True))


class SubmititExecutor:
    """The cells as one Slurm job array through submitit (``kind="slurm"``), or through submitit's local executor
    (``kind="submitit-local"``: the same path, run here).

    Args:
        kind: ``"slurm"`` or ``"submitit-local"``.
        partition: Slurm partition (``--partition``).
        time_min: Time limit per cell in minutes (a cell past it is signalled, requeued and resumes).
        gpus_per_cell: GPUs per cell (``--gpus-per-node`` of its job).
        cpus_per_cell: CPUs per cell (``--cpus-per-task``; also the cell's thread count).
        mem_gb: Memory per cell.
        sbatch: Further sbatch options, ``{"account": "lab", "qos": "high", "constraint": "a100"}``.
        array_parallelism: Cells running at once (the array's ``%N``; submitit-local: submitted at once).
        wait: Wait for the cells (else :meth:`run` returns once they are submitted).

    Raises:
        ExecutorError: submitit is not installed, or (slurm) there is no ``sbatch`` here.
    """

    def __init__(
        self,
        kind: str = "slurm",
        partition: str | None = None,
        time_min: int | None = None,
        gpus_per_cell: int | None = None,
        cpus_per_cell: int | None = None,
        mem_gb: float | None = None,
        sbatch: dict[str, Any] | None = None,
        array_parallelism: int | None = None,
        wait: bool = True,
        poll_s: float | None = None,
    ) -> None:
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise ExecutorError(f"--executor {kind} needs submitit, which is not installed: {INSTALL_HINT}") from None
        if kind == "slurm":
            import shutil

            if shutil.which("sbatch") is None or shutil.which("srun") is None:
                raise ExecutorError(
                    "--executor slurm: no sbatch/srun on PATH; run the sweep on the cluster's login node "
                    "(or --executor local here)"
                )
        for flag, value in (("--array-parallelism", array_parallelism), ("--cpus-per-cell", cpus_per_cell)):
            if value is not None and value < 1:
                raise ExecutorError(f"{flag} {value}: give at least 1")
        if gpus_per_cell is not None and gpus_per_cell < 0:
            raise ExecutorError(f"--gpus-per-cell {gpus_per_cell}: give 0 or more")
        self.kind, self.waits = kind, wait
        self.settings: dict[str, Any] = {"partition": partition, "time_min": time_min, "gpus_per_cell": gpus_per_cell}
        self.settings.update(cpus_per_cell=cpus_per_cell, mem_gb=mem_gb, sbatch=dict(sbatch or {}))
        self.array_parallelism = array_parallelism
        self.poll_s = poll_s if poll_s is not None else (30.0 if kind == "slurm" else 0.5)

    def describe(self) -> str:
        shown = {k: v for k, v in self.settings.items() if v not in (None, {})}
        limit = f", {self.array_parallelism} at a time" if self.array_parallelism else ""
        return f"{self.kind} through submitit{limit}" + (f" ({shown})" if shown else "")

    def _executor(self, sweep_dir: Path, name: str) -> Any:
        import submitit

        cluster = "slurm" if self.kind == "slurm" else "local"
        executor = submitit.AutoExecutor(folder=sweep_dir / SUBMITIT_DIR, cluster=cluster)
        s = self.settings
        params: dict[str, Any] = {"name": name, "timeout_min": s["time_min"] or 24 * 60, "tasks_per_node": 1}
        params.update(gpus_per_node=s["gpus_per_cell"] or 0, nodes=1)
        if s["cpus_per_cell"]:
            params["cpus_per_task"] = s["cpus_per_cell"]
        if s["mem_gb"]:
            params["mem_gb"] = s["mem_gb"]
        if s["partition"]:
            params["slurm_partition"] = s["partition"]
        if s["sbatch"]:
            params["slurm_additional_parameters"] = s["sbatch"]
        if self.array_parallelism:
            params["slurm_array_parallelism"] = self.array_parallelism
        try:
            executor.update_parameters(**params)
        except ValueError as exc:
            raise ExecutorError(f"submitit refused the settings: {' '.join(str(exc).split())}") from None
        return executor

    def run(self, sweep_dir: Path, tasks: Sequence[CellTask], started: Callback, finished: Callback) -> None:
        from submitit.core.utils import FailedJobError

        if not tasks:
            return
        executor = self._executor(sweep_dir, f"sweep-{sweep_dir.name}")
        limit = self.array_parallelism or len(tasks)
        at_once = self.kind == "slurm" or limit >= len(tasks)
        if not at_once and not self.waits:
            raise ExecutorError("--no-wait with submitit-local needs --array-parallelism >= the number of cells")
        slots = _Slots(limit if self.kind != "slurm" else None, 0, [], "--array-parallelism")
        queue, jobs = list(tasks), dict[Any, tuple[CellTask, float]]()
        try:
            while queue or jobs:
                batch = queue if at_once else queue[: max(0, limit - len(jobs))]
                queue = [] if at_once else queue[len(batch) :]
                if batch:
                    batch = [dataclasses.replace(t, env={**t.env, **slots.take()[1]}) for t in batch]
                    try:
                        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's refusal too
                            submitted = executor.map_array(CellRunner(), batch)
                    except FailedJobError as exc:
                        raise ExecutorError(f"sbatch refused the job array: {' '.join(str(exc).split())}") from None
                    for job, task in zip(submitted, batch, strict=True):
                        jobs[job] = (task, time.perf_counter())
                        started(task, {"job_id": str(job.job_id), "log": str(job.paths.stdout)})
                if not self.waits:
                    return
                for job in [j for j in jobs if j.done()]:
                    task, start = jobs.pop(job)
                    ended = f"job {job.job_id} ended {job.state}"
                    log, took = str(job.paths.stdout), time.perf_counter() - start
                    finished(task, _outcome(task, ended, log, took, str(job.job_id)))
                time.sleep(self.poll_s if jobs else 0)
        except KeyboardInterrupt:
            print(
                f"interrupted: the {len(jobs)} submitted cell(s) go on; `python -m idkl_lib.experiments.sweep "
                f"--status {sweep_dir}` collects them (scancel stops them)",
                file=sys.stderr,
            )
            raise


SLURM_ENDED = ("BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT")
"""Slurm job states of a job that no longer runs (``sacct``)."""


def job_ended(sweep_dir: Path, job_id: str, slurm: bool) -> str | None:
    """How a submitted cell's job ended (``"with a result"`` once submitit wrote its result, else the Slurm state
    when ``sacct`` reports one of :data:`SLURM_ENDED`), or None while it is queued, running or being requeued."""
    from submitit.core.utils import JobPaths

    if JobPaths(sweep_dir / SUBMITIT_DIR, job_id, 0).result_pickle.exists():
        return "with a result"
    if not slurm:
        return None
    try:
        import submitit

        state = str(submitit.SlurmJob(folder=sweep_dir / SUBMITIT_DIR, job_id=job_id).state)
    except Exception:  # noqa: BLE001 - no sacct here: unknown, still waiting
        return None
    return state if state.split()[0] in SLURM_ENDED else None


def make_executor(kind: str = "local", wait: bool = True, **settings: Any) -> Executor:
    """The executor ``kind`` (:data:`EXECUTOR_KINDS`) with the settings of :data:`EXECUTOR_KEYS` (None: default).

    Raises:
        ExecutorError: An unknown kind, a setting the kind does not take, or settings it cannot honour.
    """
    settings = {key: value for key, value in settings.items() if value is not None}
    unknown = sorted(set(settings) - set(EXECUTOR_KEYS))
    if unknown:
        raise ExecutorError(f"unknown executor setting(s) {unknown}; valid: {', '.join(EXECUTOR_KEYS[1:])}")
    if kind == "local":
        extra = sorted(set(settings) - {"jobs", "gpus_per_cell"})
        if extra:
            raise ExecutorError(f"--executor local takes --jobs and --gpus-per-cell, not {extra} (Slurm settings)")
        return LocalExecutor(settings.get("jobs"), settings.get("gpus_per_cell"))
    if kind in ("slurm", "submitit-local"):
        if "jobs" in settings:
            settings.setdefault("array_parallelism", settings.pop("jobs"))
        return SubmititExecutor(kind, wait=wait, **settings)
    raise ExecutorError(f"unknown executor {kind!r}; executors: {', '.join(EXECUTOR_KINDS)}")
