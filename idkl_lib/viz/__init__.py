"""Visualisation helpers for the notebooks: Grad-CAM, UMAP, rank lists, plots and widgets.

Importing this package is light: ``umap`` (numba), ``pytorch_grad_cam`` (OpenCV), ``sklearn`` and ``matplotlib``
are imported inside the functions that need them. All figures are plotly figures sharing one look
(:data:`MODALITY_COLORS`: visible = blue, infrared = orange; Okabe-Ito colours; Viridis maps); save them with
:func:`save_figure` (offline HTML, and PNG with kaleido when a Chrome/Chromium is installed).
"""

from idkl_lib.viz.embeddings import embedding_scatter, modality_gap_stats, sample_hover, umap_embed
from idkl_lib.viz.gradcam import (
    CAM_METHODS,
    EmbeddingModel,
    SimilarityTarget,
    cam_mass,
    embed_images,
    gradcam_grid,
    overlay_cam,
    similarity_cam,
)
from idkl_lib.viz.images import IMAGENET_MEAN, IMAGENET_STD, add_border, denormalize, load_image
from idkl_lib.viz.plots import (
    MATCH_COLOR,
    MISMATCH_COLOR,
    MODALITY_COLORS,
    MODALITY_SYMBOLS,
    batch_layout_figure,
    cmc_curves,
    dataset_bars,
    dataset_stats,
    figure_to_png,
    heatmap,
    heatmap_grid,
    image_grid,
    image_size_histogram,
    logit_distributions,
    loss_curves,
    results_table,
    sample_grid,
    save_figure,
)
from idkl_lib.viz.ranklist import first_match_ranks, ranked_gallery, ranklist_figure, save_ranklist_png
from idkl_lib.viz.widgets import gradcam_picker, identity_browser, query_picker

__all__ = [
    "CAM_METHODS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MATCH_COLOR",
    "MISMATCH_COLOR",
    "MODALITY_COLORS",
    "MODALITY_SYMBOLS",
    "EmbeddingModel",
    "SimilarityTarget",
    "add_border",
    "batch_layout_figure",
    "cam_mass",
    "cmc_curves",
    "dataset_bars",
    "dataset_stats",
    "denormalize",
    "embed_images",
    "embedding_scatter",
    "figure_to_png",
    "first_match_ranks",
    "gradcam_grid",
    "gradcam_picker",
    "heatmap",
    "heatmap_grid",
    "identity_browser",
    "image_grid",
    "image_size_histogram",
    "load_image",
    "logit_distributions",
    "loss_curves",
    "modality_gap_stats",
    "overlay_cam",
    "query_picker",
    "ranked_gallery",
    "ranklist_figure",
    "results_table",
    "sample_grid",
    "sample_hover",
    "save_figure",
    "save_ranklist_png",
    "similarity_cam",
    "umap_embed",
]
