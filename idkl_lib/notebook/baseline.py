"""What notebook 02 adds around :func:`idkl_lib.train.train`: the check of its step folders before anything runs
(worded with the notebook's parameters) and the comparison baseline it can train as well (``with_baseline``).

The baseline is the ID + triplet model of notebooks 04 and 05 (``loss_preset="baseline"``, the same recipe, data and
seed, no loss-weight overrides), trained into ``<run_dir>/02_train_baseline/``, where the pipeline's own
``02_train_baseline`` step writes it; the pipeline and the sweeps pass ``with_baseline=False``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import plotly.graph_objects as go

from idkl_lib.config import TrainConfig
from idkl_lib.data import VIDataset
from idkl_lib.notebook.context import DataSettings, RunFolder
from idkl_lib.notebook.params import resolve_resume
from idkl_lib.runs import (
    BASELINE_STEP,
    CHECKPOINT_NAME,
    HISTORY_NAME,
    TRAIN_STEP,
    RunFolderError,
    config_hash,
    read_record,
    step_path,
)
from idkl_lib.utils.io import atomic_write_json

__all__ = ["HISTORY_NAME", "baseline_config", "check_train_folder", "train_baseline", "wants_baseline"]


def check_train_folder(*configs: TrainConfig | None, resume: str = "") -> None:
    """Refuse, before anything is computed, to train into a folder holding a checkpoint unless notebook 02 asks to
    continue it (``resume``) or replace it (``overwrite``); the message names the folder and the ways out.

    Args:
        *configs: The configurations notebook 02 trains (IDKL, and the baseline or None).
        resume: Notebook 02's ``resume`` parameter.

    Raises:
        idkl_lib.runs.guard.RunFolderError: A folder holds a checkpoint.
    """
    for cfg in configs:
        if cfg is None:
            continue
        folder = Path(cfg.out_dir)
        if resume or cfg.overwrite or not (folder / CHECKPOINT_NAME).is_file():
            continue
        record = read_record(folder) or {}
        digest = config_hash(cfg.to_dict(), TrainConfig.RESUMABLE_CHANGES)
        if record.get("config_hash") == digest:
            what = "a checkpoint of this configuration (settings a resume may change, such as epochs, aside)"
        else:
            old = record.get("config_hash", "unrecorded")
            what = f"the checkpoint of another run (config {old}; this run {digest})"
        created = f", created {record['created']}" if record.get("created") else ""
        raise RunFolderError(
            f"{folder} already holds {what}{created}. Train into a new folder (another run_tag: "
            f"{folder.parent}/{TRAIN_STEP}_<run_tag>, or another run_dir) or pass overwrite=True to replace it "
            "(resume='auto' continues it)"
        )


def baseline_config(cfg: TrainConfig, run: RunFolder) -> TrainConfig:
    """The comparison baseline of ``cfg``: ``loss_preset="baseline"`` and no loss-weight overrides, trained into
    ``<run_dir>/02_train_baseline``; recipe, data, seed and everything else as ``cfg``."""
    return dataclasses.replace(
        cfg, loss_preset="baseline", loss_overrides={}, out_dir=str(step_path(run.path, BASELINE_STEP))
    )


def wants_baseline(with_baseline: bool | None, cfg: TrainConfig, data: DataSettings, run: RunFolder) -> bool:
    """Whether notebook 02 trains the baseline too: ``with_baseline``, or when ``None`` for the synthetic dataset run
    interactively (the demo in JupyterLab); never when this run is the baseline itself or trains into its folder."""
    if cfg.loss_preset == "baseline" or Path(cfg.out_dir).resolve() == (run.path / BASELINE_STEP).resolve():
        return False
    if with_baseline is None:
        return data.dataset == "synthetic" and run.interactive
    return bool(with_baseline)


def train_baseline(
    cfg: TrainConfig, dataset: VIDataset, resume: str | os.PathLike[str] = ""
) -> tuple[object, go.Figure]:
    """Train the baseline ``cfg`` (:func:`baseline_config`) with a live loss plot, which gives way to the final loss
    figure (returned, to be shown once); write its ``history.json``.

    Args:
        cfg: The baseline's configuration.
        dataset: The parsed dataset.
        resume: Notebook 02's ``resume``: ``"auto"`` continues the baseline's own checkpoint, anything else starts
            it from scratch (an explicit checkpoint path is the IDKL model's).

    Returns:
        ``(TrainResult, final loss-curve figure)``.
    """
    from idkl_lib.train.loop import train
    from idkl_lib.viz.training_losses import LiveLossPlot

    live = LiveLossPlot("Losses (baseline)")
    result = train(cfg, dataset=dataset, resume=resolve_resume("auto" if resume == "auto" else "", cfg.out_dir),
                   on_log=live)  # fmt: skip
    atomic_write_json(Path(cfg.out_dir) / HISTORY_NAME, result.history)
    return result, live.finish(result.history)
