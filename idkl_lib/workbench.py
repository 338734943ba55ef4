"""The notebooks' front: one import (``from idkl_lib import workbench as wb``) that re-exports the library calls the
numbered notebooks use, plus the two notebook display settings.

Every notebook follows the convention of :mod:`idkl_lib.pipeline.run`: one ``parameters`` cell of plain literals, then a
cell that calls :func:`check_params` and builds the config objects, then library calls, and a last cell that writes
``<step_dir>/metrics.json`` with :func:`write_metrics` and its figures with :func:`idkl_lib.viz.save_figure`.
Nothing is implemented here; each name lives with its concept:

* parameter rules: :mod:`idkl_lib.notebook.params` (derived from :class:`~idkl_lib.config.TrainConfig` and the
  registries);
* per-dataset recipes: :mod:`idkl_lib.config.recipe`;
* run-folder layout, ``metrics.json``: :mod:`idkl_lib.runs`;
* the run context (run folder, data settings set once, the checkpoint's data): :mod:`idkl_lib.notebook.context`;
* notebook 02's step-folder check and comparison baseline: :mod:`idkl_lib.notebook.baseline`;
* datasets, the dataset card: :mod:`idkl_lib.data.card`, :mod:`idkl_lib.data.registry`;
* rebuilding models: :mod:`idkl_lib.checkpoint`;
* the rank view and its query orders: :mod:`idkl_lib.eval.views`; query by image: :mod:`idkl_lib.viz.image_query`;
* figures: :mod:`idkl_lib.viz.training_losses`, :mod:`idkl_lib.viz.dataset_plots`, :mod:`idkl_lib.viz.embeddings`;
* the Grad-CAM study: :mod:`idkl_lib.viz.gradcam_study`;
* IDKL vs its baseline: :mod:`idkl_lib.eval.comparison`, :mod:`idkl_lib.viz.baseline_table`; this run's evidence
  beside the paper's claims: :mod:`idkl_lib.notebook.evidence`;
* notebook 06's runs (a sweep, run folders, or IDKL and its baseline), or what is missing:
  :mod:`idkl_lib.experiments.compare_runs`.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
import torch

from idkl_lib.checkpoint import load_trained_model, untrained_model
from idkl_lib.config.recipe import recipe_changes, recipe_line
from idkl_lib.data.card import (
    CARD_LABELS,
    EXPECTED_STATISTICS,
    dataset_card,
    expected_statistics,
    identity_camera_rows,
    image_sizes,
    subsample,
    synthetic_root,
)
from idkl_lib.data.image_dataset import load_images
from idkl_lib.eval.comparison import EvalSettings
from idkl_lib.eval.views import QUERY_ORDERS, RankView, rank_view
from idkl_lib.experiments.compare_runs import RunComparison, compare_runs
from idkl_lib.models.complexity import model_complexity
from idkl_lib.notebook.baseline import baseline_config, check_train_folder, train_baseline, wants_baseline
from idkl_lib.notebook.comparison import compare_checkpoints, find_baseline_checkpoint
from idkl_lib.notebook.context import (
    DataMismatchError,
    DataSettings,
    RunFolder,
    checkpoint_data,
    open_run,
    prepare_dataset,
    train_step_name,
)
from idkl_lib.notebook.evidence import cam_evidence, gap_evidence, retrieval_evidence
from idkl_lib.notebook.params import (
    DATASET_CHOICES,
    ParameterError,
    check_params,
    loss_overrides,
    loss_weight_overrides,
    notebook_recipe,
    resolve_resume,
)
from idkl_lib.runs import (
    BASELINE_STEP,
    CHECKPOINT_NAME,
    TRAIN_STEP,
    checkpoint_path,
    jsonable,
    optional_checkpoint,
    step_path,
    write_metrics,
)
from idkl_lib.viz.baseline_table import baseline_table
from idkl_lib.viz.dataset_plots import dataset_card_figure, statistics_table
from idkl_lib.viz.embeddings import modality_gap_figure
from idkl_lib.viz.gradcam_study import (
    FEATURE_VIEWS,
    FeatureView,
    cam_statistics,
    feature_views,
    gradcam_pairs,
    model_for_view,
    view_cams,
)
from idkl_lib.viz.image_query import image_query_box, image_ranklist
from idkl_lib.viz.theme import NOTEBOOK_RENDERER
from idkl_lib.viz.training_losses import LiveLossPlot, final_losses, loss_figure
from idkl_lib.viz.training_losses import _mime_bundle as _mime_bundle  # the live plot's tests read wb._mime_bundle

__all__ = [
    "BASELINE_STEP",
    "CARD_LABELS",
    "CHECKPOINT_NAME",
    "DATASET_CHOICES",
    "EXPECTED_STATISTICS",
    "FEATURE_VIEWS",
    "QUERY_ORDERS",
    "TRAIN_STEP",
    "DataMismatchError",
    "DataSettings",
    "EvalSettings",
    "FeatureView",
    "LiveLossPlot",
    "ParameterError",
    "RankView",
    "RunComparison",
    "RunFolder",
    "baseline_config",
    "baseline_table",
    "cam_evidence",
    "cam_statistics",
    "check_params",
    "check_train_folder",
    "checkpoint_data",
    "checkpoint_path",
    "compare_checkpoints",
    "compare_runs",
    "dataset_card",
    "dataset_card_figure",
    "expected_statistics",
    "feature_views",
    "final_losses",
    "find_baseline_checkpoint",
    "gap_evidence",
    "gradcam_pairs",
    "identity_camera_rows",
    "image_query_box",
    "image_ranklist",
    "image_sizes",
    "jsonable",
    "load_images",
    "load_trained_model",
    "loss_figure",
    "loss_overrides",
    "loss_weight_overrides",
    "modality_gap_figure",
    "model_complexity",
    "model_for_view",
    "notebook_recipe",
    "open_run",
    "optional_checkpoint",
    "prepare_dataset",
    "rank_view",
    "recipe_changes",
    "recipe_line",
    "resolve_resume",
    "retrieval_evidence",
    "set_cpu_threads",
    "setup_notebook",
    "show_figures",
    "statistics_table",
    "step_path",
    "subsample",
    "synthetic_root",
    "train_baseline",
    "train_step_name",
    "untrained_model",
    "view_cams",
    "wants_baseline",
    "write_metrics",
]


def setup_notebook(renderer: str = NOTEBOOK_RENDERER) -> None:
    """Display settings shared by the notebooks (call once, in the imports cell).

    Plotly figures are shown with ``renderer``: the default ``"plotly_mimetype+notebook"`` gives JupyterLab its
    interactive plotly output and the HTML export (the pipeline's report) an HTML copy with plotly.js embedded once
    per notebook, so the report works offline. (Plotly's own default in a Jupyter kernel is the mimetype alone,
    which nbconvert cannot render.) The first figure shown loads plotly.js into the page.
    """
    import plotly.io as pio

    pio.renderers.default = renderer


def show_figures(figures: Mapping[str, go.Figure]) -> dict[str, go.Figure]:
    """Show every figure of ``figures`` in order (``fig.show()``) and return them, e.g. to collect a notebook's
    figures for the last cell: ``figures |= wb.show_figures(comparison.figures("paired"))``."""
    for fig in figures.values():
        fig.show()
    return dict(figures)


def set_cpu_threads(cpu_threads: int) -> int:
    """Set torch's intra-op CPU threads (``0`` keeps torch's default) and return the number in use.

    The demo's small networks are dominated by per-operation overhead: one thread is the fastest setting, and on a
    machine shared with other processes several spinning OpenMP threads can slow a training step down tenfold.
    """
    check_params(cpu_threads=cpu_threads)
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)
    return torch.get_num_threads()
