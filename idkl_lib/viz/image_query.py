"""Query by image: embed one picked or uploaded image with the model and show its top-k in a protocol's test gallery
(a :class:`~idkl_lib.eval.views.RankView` trial), with the protocol's camera rule.

An image from the dataset's folders keeps its identity and camera (read from its path,
:func:`idkl_lib.data.image_files.label_image`), so the camera rule applies and true matches are framed; an uploaded
image has neither, so nothing is removed and every frame shows "another identity" (the title says so).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from idkl_lib.data.image_files import UNKNOWN, label_image
from idkl_lib.data.records import Sample
from idkl_lib.distances import pairwise_distance
from idkl_lib.eval.features import extract_features
from idkl_lib.eval.views import RankView
from idkl_lib.viz.ranklist import ranklist_figure
from idkl_lib.viz.widgets import _render

__all__ = ["image_query_box", "image_ranklist"]


def _view_features(view: RankView, records: Sequence[Sample], feats: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The rows of ``feats`` (aligned with ``records``) of the view's gallery, in the view's order."""
    row = {s.path: i for i, s in enumerate(records)}
    missing = [s.path for s in view.gallery if s.path not in row]
    if missing:
        raise ValueError(f"{len(missing)} gallery images of the view have no feature (e.g. {missing[0]})")
    index = torch.as_tensor([row[s.path] for s in view.gallery])
    return torch.as_tensor(feats).float()[index]


def image_ranklist(
    model: torch.nn.Module,
    view: RankView,
    gallery_records: Sequence[Sample],
    gallery_feats: torch.Tensor | np.ndarray,
    image: str | os.PathLike[str],
    height: int,
    width: int,
    *,
    topk: int = 10,
    feature: str = "shared",
    flip: bool = False,
    device: torch.device | str = "cpu",
) -> go.Figure:
    """The rank list of ``image`` in the gallery of ``view``.

    Args:
        model: The trained model (``embed``).
        view: The protocol trial whose gallery and camera rule are used (:func:`idkl_lib.eval.views.rank_view`).
        gallery_records: The records ``gallery_feats`` are aligned with (e.g. ``dataset.gallery``).
        gallery_feats: Their features (the evaluation's, same ``feature`` and ``flip``).
        image: The query image file.
        height: Model input height.
        width: Model input width.
        topk: Gallery images shown.
        feature: Retrieval feature of ``gallery_feats``.
        flip: Flip averaging of ``gallery_feats``.
        device: Where the model runs.
    """
    query, _layout, _root = label_image(image)
    feat = extract_features(model, [query], height, width, which=feature, flip=flip, device=device)  # type: ignore[arg-type]
    gallery = _view_features(view, gallery_records, gallery_feats)
    distmat = pairwise_distance(F.normalize(feat, dim=1), F.normalize(gallery, dim=1), metric="euclidean").numpy()
    known = query.pid != UNKNOWN and query.camid != UNKNOWN
    rule = f"{view.camera_filter} camera rule" if known else "no camera rule (camera unknown)"
    who = f"pid {query.pid}, cam {query.camid}" if known else "identity unknown: every frame reads ✗"
    return ranklist_figure(
        distmat,
        [query],
        view.gallery,
        0,
        topk=topk,
        camera_alias=view.camera_alias,
        camera_filter=view.camera_filter,
        exclude_same_camera=known,
        title=f"Query by image {Path(query.path).name} ({who}) in {view.name}, {rule}",
    )


def _saved_upload(upload: widgets.FileUpload) -> str | None:
    """The uploaded file written to a temporary folder (its name kept), or None when nothing was uploaded."""
    if not upload.value:
        return None
    item = upload.value[0]
    folder = Path(tempfile.mkdtemp(prefix="idkl_query_"))
    path = folder / Path(str(item["name"])).name
    path.write_bytes(bytes(item["content"]))
    return str(path)


def image_query_box(
    model: torch.nn.Module,
    view: RankView,
    gallery_records: Sequence[Sample],
    gallery_feats: torch.Tensor | np.ndarray,
    height: int,
    width: int,
    *,
    image: str = "",
    topk: int = 10,
    feature: str = "shared",
    flip: bool = False,
    device: torch.device | str = "cpu",
) -> widgets.VBox:
    """A path box and an upload button; the rank list (:func:`image_ranklist`) of the image shown below.

    ``image`` is the starting path (``""``: the view's first query image). An upload replaces the path's image.

    Returns:
        ``VBox([HBox([Text path, FileUpload, Label]), Output])``.
    """
    start = image or view.query[0].path
    path_box = widgets.Text(value=start, description="image", layout=widgets.Layout(width="60%"))
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
    label = widgets.Label()
    output = widgets.Output()

    def build() -> go.Figure:
        chosen = _saved_upload(upload) or path_box.value
        label.value = f"showing {Path(chosen).name}" + (" (uploaded)" if upload.value else "")
        return image_ranklist(
            model,
            view,
            gallery_records,
            gallery_feats,
            chosen,
            height,
            width,
            topk=topk,
            feature=feature,
            flip=flip,
            device=device,
        )

    path_box.observe(lambda _change: _render(output, build), names="value")
    upload.observe(lambda _change: _render(output, build), names="value")
    _render(output, build)
    return widgets.VBox([widgets.HBox([path_box, upload, label]), output])
