"""The run-folder layout, written once: step names, file names, checkpoint paths, ``metrics.json`` writing and the
one JSON cleaner. The pipeline, the trainer and the notebooks all use these names; nobody spells a path out.

Run folder (``run_dir`` = ``reports/<name>``; a step folder is ``<run_dir>/<step name>``)::

    <run_dir>/01_data_exploration/      metrics.json, figures/
    <run_dir>/02_train/                 checkpoint.pth, history.json, metrics.json, figures/, tensorboard/   (IDKL)
    <run_dir>/02_train_baseline/        the same for the model trained without distillation
    <run_dir>/03_evaluate/ ...
    <run_dir>/index.html              the report (links every step, figures, metrics table)
    <run_dir>/<step>.ipynb, .html     executed notebook and its HTML export (also for a failed step)
    <run_dir>/<step>.slides.html      its reveal.js slide deck, code hidden (finished steps)
    <run_dir>/<step>.kernel.log       what the step's kernel process wrote to stdout/stderr (its own log lines, C-level
                                      messages); removed when empty. Cell output is in the notebook, not here
    <run_dir>/mathjax/                MathJax for those pages, copied once (:mod:`idkl_lib.report.mathjax`)
    <run_dir>/reveal.js/              reveal.js for the decks, copied once (:mod:`idkl_lib.report.offline`)
    <run_dir>/plotly.min.js           plotly.js for the pages' and decks' figures, written once (the same)
    <run_dir>/metrics.json            {step name: that step's metrics}
    <run_dir>/params.json             {step name: the parameters it ran with}
    <run_dir>/environment.json        versions, git commit, device, host, start/end time
    <run_dir>/status.json             run state, per-step state and parameter hashes, the failure if any
    <run_dir>/context.json            the run's data settings (dataset, folder, synthetic sizes), written by notebook 01
                                      (or 02 when it runs first); notebooks 02-05 default to them
                                      (:mod:`idkl_lib.notebook.context`)
    <run_dir>/run.json                what made the folder (kind, config hash, created, command): a training out-dir
                                      (e.g. 02_train/) has its own; another run's results are refused
                                      (:mod:`idkl_lib.runs.guard`)

Sweep folder (``reports/<sweep>``; one run folder per cell, :mod:`idkl_lib.experiments.sweep`)::

    <sweep_dir>/<cell>/               a run folder as above, plus (written by the cell's own process):
    <sweep_dir>/<cell>/cell.json        the cell process's record: state, parameter hash, pid, host, job id, error
    <sweep_dir>/<cell>/cell.log         the cell's output under the local executors (``--jobs``)
    <sweep_dir>/submitit/             submitit's job files and the Slurm logs of ``--executor slurm``
    <sweep_dir>/sweep.json            the grid, each cell's parameters, state and hash, the order
    <sweep_dir>/results.csv, .json    one row per finished or failed cell (parameters, metrics, times)
    <sweep_dir>/term_analysis.json    :mod:`idkl_lib.experiments.term_analysis`

Views folder (``--out`` of :mod:`idkl_lib.experiments.views`: notebooks 04 and 05 over a sweep's seeds)::

    <views_dir>/seed-<n>/             a run folder as above with steps 04_gradcam and 05_embeddings
    <views_dir>/views.json            their statistics over seeds

Nothing outside this package spells one of these names: read with :mod:`idkl_lib.runs.read`, build paths with
:func:`step_path`, :func:`checkpoint_path` and the constants below.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from idkl_lib.utils.io import atomic_write_json
from idkl_lib.viz.export import PLOTLY_JS

__all__ = [
    "BASELINE_STEP",
    "CELL_LOG_NAME",
    "CELL_STATE_NAME",
    "CHECKPOINT_NAME",
    "COMPARE_STEP",
    "CONTEXT_NAME",
    "DATA_STEP",
    "EMBEDDINGS_STEP",
    "ENVIRONMENT_NAME",
    "EVAL_STEP",
    "FIGURES_DIR",
    "GRADCAM_STEP",
    "HISTORY_NAME",
    "KERNEL_LOG_SUFFIX",
    "MATHJAX_DIR",
    "METRICS_NAME",
    "PARAMS_NAME",
    "PLOTLY_JS_NAME",
    "RESULTS_CSV",
    "RESULTS_JSON",
    "REVEAL_DIR",
    "RUN_RECORD_NAME",
    "SLIDES_SUFFIX",
    "STATUS_NAME",
    "SUBMITIT_DIR",
    "SWEEP_NAME",
    "TENSORBOARD_DIR",
    "TERM_ANALYSIS_NAME",
    "TRAIN_STEP",
    "VIEWS_NAME",
    "checkpoint_path",
    "jsonable",
    "optional_checkpoint",
    "step_path",
    "views_seed_path",
    "write_metrics",
]

DATA_STEP = "01_data_exploration"
"""Step that writes (or checks) the dataset and the run's data settings."""
TRAIN_STEP = "02_train"
"""Step that trains the IDKL model."""
EVAL_STEP = "03_evaluate"
"""Step that evaluates IDKL (and its baseline) through the dataset's protocols."""
GRADCAM_STEP = "04_gradcam"
EMBEDDINGS_STEP = "05_embeddings"
COMPARE_STEP = "06_compare_runs"
"""The comparison of runs over seeds (a sweep's last step, in the sweep folder itself)."""
BASELINE_STEP = "02_train_baseline"
"""Step that trains the comparison model without distillation (notebook 02 with ``loss_preset="baseline"``)."""
CHECKPOINT_NAME = "checkpoint.pth"
"""The checkpoint of a training folder (rewritten atomically after every epoch)."""
CONTEXT_NAME = "context.json"
"""The run folder's data settings (:mod:`idkl_lib.notebook.context`)."""
METRICS_NAME = "metrics.json"
"""Every step's (and the trainer's) result file; the run folder's own one collects all steps'."""
MATHJAX_DIR = "mathjax"
"""The local MathJax of the run folder's notebook pages (:func:`idkl_lib.report.mathjax.local_mathjax`)."""
REVEAL_DIR = "reveal.js"
"""The local reveal.js of the run folder's slide decks (:func:`idkl_lib.report.offline.local_reveal`)."""
PLOTLY_JS_NAME = PLOTLY_JS
"""plotly.js shared by the run folder's notebook pages and decks (:func:`idkl_lib.report.offline.local_plotly`)."""
FIGURES_DIR = "figures"
PARAMS_NAME = "params.json"
ENVIRONMENT_NAME = "environment.json"
STATUS_NAME = "status.json"
HISTORY_NAME = "history.json"
"""A training folder's per-epoch loss history (written by notebook 02)."""
RUN_RECORD_NAME = "run.json"
"""What made a run folder: ``{"kind", "config_hash", "created", "command", "resumed": [...]}``
(:mod:`idkl_lib.runs.guard`)."""
SWEEP_NAME = "sweep.json"
RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
TERM_ANALYSIS_NAME = "term_analysis.json"
VIEWS_NAME = "views.json"
CELL_STATE_NAME = "cell.json"
"""A sweep cell's own record, written by the process that runs it (:mod:`idkl_lib.experiments.executors`): what
the coordinator reads when that process ended without telling it (a Slurm job, a killed coordinator)."""
CELL_LOG_NAME = "cell.log"
"""A sweep cell's standard output and error under the local executors."""
SUBMITIT_DIR = "submitit"
"""The sweep folder's submitit folder: job pickles and the Slurm logs (``%j_0_log.out``/``.err``)."""
TENSORBOARD_DIR = "tensorboard"
"""TensorBoard event files of a training folder (``idkl_lib.train.tensorboard``)."""
SLIDES_SUFFIX = ".slides.html"
KERNEL_LOG_SUFFIX = ".kernel.log"
"""A step's slide deck is ``<run_dir>/<step>.slides.html``, next to ``<step>.html`` (``idkl_lib.report.slides``)."""


def views_seed_path(views_dir: str | os.PathLike[str], seed: int) -> Path:
    """``<views_dir>/seed-<n>``: one seed's run folder of notebooks 04 and 05 (:mod:`idkl_lib.experiments.views`)."""
    return Path(views_dir) / f"seed-{seed}"


def step_path(run_dir: str | os.PathLike[str], step: str) -> Path:
    """``<run_dir>/<step>``: the folder a pipeline step writes (see :mod:`idkl_lib.pipeline.run`)."""
    return Path(run_dir) / step


def checkpoint_path(run_dir: str | os.PathLike[str], checkpoint: str = "", step: str = TRAIN_STEP) -> Path:
    """The checkpoint a notebook loads: ``checkpoint`` when given, else ``<run_dir>/<step>/checkpoint.pth``.

    Raises:
        FileNotFoundError: The file does not exist; the message says which step writes it.
    """
    path = Path(checkpoint).expanduser() if checkpoint else step_path(run_dir, step) / CHECKPOINT_NAME
    if not path.is_file():
        origin = f"parameter checkpoint={checkpoint!r}" if checkpoint else f"the checkpoint of step {step!r}"
        how = (
            "run notebooks/02_train.ipynb with with_baseline=True (it trains the baseline into "
            f"{step_path(run_dir, step)}; the pipeline's step 02_train_baseline)"
            if step == BASELINE_STEP
            else f"run notebooks/02_train.ipynb first with the same run_dir (it writes {path})"
        )
        raise FileNotFoundError(f"{origin}: {path.resolve()} does not exist; {how}, or pass the checkpoint path")
    return path


def optional_checkpoint(
    run_dir: str | os.PathLike[str], checkpoint: str = "", step: str = BASELINE_STEP
) -> Path | None:
    """:func:`checkpoint_path`, or None when ``checkpoint`` is empty and ``<run_dir>/<step>`` holds none (a given
    ``checkpoint`` must exist)."""
    if not checkpoint and not (step_path(run_dir, step) / CHECKPOINT_NAME).is_file():
        return None
    return checkpoint_path(run_dir, checkpoint, step)


def jsonable(obj: Any, where: str | None = None) -> Any:
    """A JSON-ready copy: numpy and torch scalars/arrays to Python numbers/lists, paths to strings, NaN/inf to None.

    Args:
        obj: Nested mappings, lists and tuples of numbers, strings, arrays, tensors and paths.
        where: When given (e.g. ``"02_train/metrics.json"``), every NaN/inf replaced by ``None`` is reported with a
            warning naming its place (``where.key[i]``).
    """
    if isinstance(obj, Mapping):
        return {str(key): jsonable(value, where and f"{where}.{key}") for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(value, where and f"{where}[{i}]") for i, value in enumerate(obj)]
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # a torch tensor (torch is not imported here)
        return jsonable(obj.detach().cpu().tolist(), where)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), where)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        if where:
            warnings.warn(f"{where} is {obj}; stored as null in the run's metrics.json", stacklevel=2)
        return None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_metrics(step_dir: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write ``<step_dir>/metrics.json`` atomically, converting numpy/torch scalars and NaN/inf (to ``null``).

    Returns:
        The path written.
    """
    return atomic_write_json(Path(step_dir) / METRICS_NAME, jsonable(dict(metrics)))
