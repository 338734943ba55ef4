"""Glue between the numbered notebooks and the library: parameter checks, datasets, run-folder paths, checkpoints,
feature views, live plots and ``metrics.json``.

Every notebook follows the convention of :mod:`idkl_lib.pipeline`: one ``parameters`` cell of plain literals, then a
cell that calls :func:`check_params` and builds the config objects, then library calls, and a last cell that writes
``<step_dir>/metrics.json`` with :func:`write_metrics` and its figures with :func:`idkl_lib.viz.save_figure`.
Anything longer than a few lines of glue lives here (or in :mod:`idkl_lib.viz`), with tests, never in a notebook.

Run-folder layout (``run_dir`` = ``reports/<name>``; a step folder is ``<run_dir>/<step name>``)::

    <run_dir>/01_data_exploration/      metrics.json, figures/
    <run_dir>/02_train/                 checkpoint.pth, history.json, metrics.json, figures/   (IDKL)
    <run_dir>/02_train_baseline/        the same for the model trained without distillation
    <run_dir>/03_evaluate/ ...

:func:`checkpoint_path` and :func:`step_path` encode these conventions; notebooks never spell the paths out.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from idkl_lib.checkpoint import load_checkpoint, load_model_state
from idkl_lib.config import ARCHS, LossWeights, TrainConfig
from idkl_lib.data import DATASETS, Sample, VIDataset, build_dataset, write_synthetic
from idkl_lib.data.image_dataset import load_rgb
from idkl_lib.data.records import INFRARED, VISIBLE
from idkl_lib.data.synthetic import LAYOUTS
from idkl_lib.data.transforms import build_transforms
from idkl_lib.losses.distances import pairwise_distance
from idkl_lib.models import IDKLModel, build_model
from idkl_lib.utils.io import atomic_write_json
from idkl_lib.viz.plots import OKABE_ITO, loss_curves, style_figure

__all__ = [
    "DATASET_CHOICES",
    "EXPECTED_STATISTICS",
    "FEATURE_VIEWS",
    "FeatureView",
    "LiveLossPlot",
    "ParameterError",
    "cam_statistics",
    "check_params",
    "checkpoint_path",
    "dataset_card",
    "dataset_card_figure",
    "expected_statistics",
    "final_losses",
    "gradcam_pairs",
    "identity_camera_rows",
    "image_sizes",
    "jsonable",
    "load_images",
    "load_trained_model",
    "loss_figure",
    "loss_overrides",
    "modality_gap_figure",
    "model_for_view",
    "prepare_dataset",
    "rank_view",
    "resolve_resume",
    "set_cpu_threads",
    "setup_notebook",
    "step_path",
    "statistics_table",
    "subsample",
    "synthetic_root",
    "untrained_model",
    "view_cams",
    "write_metrics",
]

DATASET_CHOICES: tuple[str, ...] = ("synthetic", *DATASETS)
"""Values of the notebooks' ``dataset`` parameter."""

TRAIN_STEP = "02_train"
BASELINE_STEP = "02_train_baseline"
CHECKPOINT_NAME = "checkpoint.pth"


class ParameterError(ValueError):
    """A notebook parameter has a bad value; the message names the parameter and the accepted values."""


# --------------------------------------------------------------------------------------------- notebook setup

NOTEBOOK_RENDERER = "plotly_mimetype+notebook"


def setup_notebook(renderer: str = NOTEBOOK_RENDERER) -> None:
    """Display settings shared by the notebooks (call once, in the imports cell).

    Plotly figures are shown with ``renderer``: the default ``"plotly_mimetype+notebook"`` gives JupyterLab its
    interactive plotly output and the HTML export (the pipeline's report) an HTML copy with plotly.js embedded once
    per notebook, so the report works offline. (Plotly's own default in a Jupyter kernel is the mimetype alone,
    which nbconvert cannot render.) The first figure shown loads plotly.js into the page.
    """
    import plotly.io as pio

    pio.renderers.default = renderer


def set_cpu_threads(cpu_threads: int) -> int:
    """Set torch's intra-op CPU threads (``0`` keeps torch's default) and return the number in use.

    The demo's small networks are dominated by per-operation overhead: one thread is the fastest setting, and on a
    machine shared with other processes several spinning OpenMP threads can slow a training step down tenfold.
    """
    check_params(cpu_threads=cpu_threads)
    if cpu_threads > 0:
        torch.set_num_threads(cpu_threads)
    return torch.get_num_threads()


# ----------------------------------------------------------------------------------------------- parameters


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _choice(*choices: object) -> Any:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}"

    return check


def _int_at_least(minimum: int) -> Any:
    def check(value: Any) -> str | None:
        return None if _is_int(value) and value >= minimum else f"must be an integer >= {minimum}"

    return check


def _side(value: Any) -> str | None:
    if _is_int(value) and value >= 32 and value % 16 == 0:
        return None
    return "must be a multiple of 16 and >= 32 (the backbone's stride is 16)"


def _even_k(value: Any) -> str | None:
    if _is_int(value) and value >= 2 and value % 2 == 0:
        return None
    return "must be an even integer >= 2 (K/2 visible + K/2 infrared images per identity)"


def _device(value: Any) -> str | None:
    if isinstance(value, str) and (value in ("auto", "cpu", "cuda", "mps") or value.startswith("cuda:")):
        return None
    return "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"


def _positive_number(value: Any) -> str | None:
    return None if _is_number(value) and math.isfinite(value) and value > 0 else "must be a positive number"


def _weight(value: Any) -> str | None:
    if value is None or (_is_number(value) and math.isfinite(value) and value >= 0):
        return None
    return "must be None (the preset's weight) or a number >= 0"


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _base_width(value: Any) -> str | None:
    return None if value is None or (_is_int(value) and value >= 4) else "must be None (= 64) or an integer >= 4"


def _pretrained(value: Any) -> str | None:
    return None if isinstance(value, bool | str) and value != "" else "must be True, False or the path of a .pth file"


def _milestones(value: Any) -> str | None:
    ok = isinstance(value, list | tuple) and all(_is_int(v) and v >= 1 for v in value)
    if ok and list(value) == sorted(value):
        return None
    return "must be a list of increasing epoch numbers >= 1, e.g. [55, 95]"


def _probability(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value <= 1 else "must be a probability in [0, 1]"


def _fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "must be a number in [0, 1)"


_RULES: dict[str, Any] = {
    "dataset": _choice(*DATASET_CHOICES),
    "data_root": _string,
    "synthetic_layout": _choice(*LAYOUTS),
    "synthetic_ids": _int_at_least(4),
    "synthetic_images": _int_at_least(2),
    "synthetic_modality_evidence": lambda v: None if _is_number(v) and 0 <= v <= 1 else "must be a number in [0, 1]",
    "regdb_trial": _choice(*range(1, 11)),
    "run_dir": _string,
    "step_dir": _string,
    "run_tag": _string,
    "device": _device,
    "seed": _int_at_least(0),
    "cpu_threads": _int_at_least(0),
    "arch": _choice(*ARCHS),
    "base_width": _base_width,
    "pretrained": _pretrained,
    "height": _side,
    "width": _side,
    "p": _int_at_least(2),
    "k": _even_k,
    "epochs": _int_at_least(1),
    "lr": _positive_number,
    "milestones": _milestones,
    "margin": _positive_number,
    "loss_preset": _choice(*LossWeights.PRESETS),
    "augment": _boolean,
    "random_erasing": _probability,
    "channel_augment": _boolean,
    "amp": _choice("auto", "bf16", "fp16", "off"),
    "resume": _string,
    "num_workers": _int_at_least(0),
    "log_every": _int_at_least(1),
    "final_eval": _boolean,
    "checkpoint": _string,
    "baseline_checkpoint": _string,
    "feature": _choice("shared", "specific", "concat"),
    "flip": _boolean,
    "rerank": _boolean,
    "untrained_reference": _boolean,
    "num_trials": _int_at_least(1),
    "topk": _int_at_least(1),
    "batch_size": _int_at_least(1),
    "num_queries": _int_at_least(1),
    "cam_method": _choice("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigengradcam"),
    "colormap": _choice("viridis", "cividis", "inferno", "magma", "plasma", "turbo", "jet"),
    "max_points": _int_at_least(10),
    "max_size_images": _int_at_least(1),
    "umap_neighbors": _int_at_least(2),
    "umap_min_dist": _fraction,
    "num_identities": _int_at_least(1),
    **{f"w_{name}": _weight for name in LossWeights.names()},
}
"""Rules of every notebook parameter name (one name means one thing in every notebook)."""


def check_params(**params: object) -> dict[str, object]:
    """Validate notebook parameters by name; every problem is reported at once.

    Args:
        **params: ``name=value`` pairs from a notebook's ``parameters`` cell, e.g.
            ``check_params(dataset=dataset, epochs=epochs)``.

    Returns:
        The parameters, unchanged (so the notebook can store them in ``metrics.json``).

    Raises:
        ParameterError: Naming each bad parameter, its value and what it must be, or an unknown name.
    """
    problems = []
    for name, value in params.items():
        rule = _RULES.get(name)
        if rule is None:
            problems.append(f"{name}: no rule for this parameter name (known: {', '.join(sorted(_RULES))})")
            continue
        message = rule(value)
        if message:
            problems.append(f"parameter {name}={value!r} {message}")
    if "dataset" in params and params["dataset"] != "synthetic" and params.get("data_root") in ("", None):
        problems.append("parameter data_root is empty: point it at the folder of the real dataset")
    if problems:
        raise ParameterError("bad notebook parameter(s):\n  " + "\n  ".join(problems))
    return dict(params)


def loss_overrides(**weights: float | None) -> str:
    """``TrainConfig.loss_overrides`` text for the weights that are not ``None``.

    Args:
        **weights: ``term=weight`` with the :class:`~idkl_lib.config.LossWeights` term names (``None`` keeps the
            preset's weight).

    Returns:
        ``"tgsa_inter=0.3,csa1_inter=0"``-style text, ``""`` when nothing is overridden.

    Raises:
        ParameterError: An unknown term name.
    """
    unknown = sorted(set(weights) - set(LossWeights.names()))
    if unknown:
        raise ParameterError(f"unknown loss term(s) {unknown}; terms: {', '.join(LossWeights.names())}")
    return ",".join(f"{name}={float(value)!r}" for name, value in weights.items() if value is not None)


def resolve_resume(resume: str, step_dir: str | os.PathLike[str]) -> bool | Path:
    """The ``resume`` argument of :func:`idkl_lib.train.train` from the notebook parameter.

    ``""`` starts from scratch, ``"auto"`` continues from ``<step_dir>/checkpoint.pth`` when it exists, anything
    else is a checkpoint path that must exist.
    """
    if resume == "":
        return False
    if resume == "auto":
        return True
    path = Path(resume).expanduser()
    if not path.is_file():
        raise ParameterError(f"parameter resume={resume!r}: no such checkpoint file ({path.resolve()})")
    return path


# -------------------------------------------------------------------------------------------------- paths


def step_path(run_dir: str | os.PathLike[str], step: str) -> Path:
    """``<run_dir>/<step>``: the folder a pipeline step writes (see :mod:`idkl_lib.pipeline`)."""
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
            "run notebooks/02_train.ipynb with loss_preset='baseline', run_tag='baseline' and "
            f"step_dir='{step_path(run_dir, step)}' (the pipeline's step 02_train_baseline)"
            if step == BASELINE_STEP
            else f"run notebooks/02_train.ipynb first with the same run_dir (it writes {path})"
        )
        raise FileNotFoundError(f"{origin}: {path.resolve()} does not exist; {how}, or pass the checkpoint path")
    return path


def write_metrics(step_dir: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Write ``<step_dir>/metrics.json`` atomically, converting numpy/torch scalars and NaN/inf (to ``null``).

    Returns:
        The path written.
    """
    return atomic_write_json(Path(step_dir) / "metrics.json", jsonable(dict(metrics)))


def jsonable(obj: Any) -> Any:
    """A JSON-ready copy: numpy and torch scalars/arrays to Python numbers/lists, paths to strings, NaN/inf to None."""
    if isinstance(obj, Mapping):
        return {str(key): jsonable(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(value) for value in obj]
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


# ------------------------------------------------------------------------------------------------ datasets


def synthetic_root(
    data_root: str | os.PathLike[str], layout: str, num_train_ids: int, images_per_camera: int, evidence: float = 0.0
) -> Path:
    """Folder of a synthetic dataset under ``data_root``; the name encodes its size, so sizes never collide."""
    suffix = f"-ev{evidence:g}" if evidence else ""  # modality-specific evidence level (idkl_lib/data/synthetic.py)
    return Path(data_root) / f"synthetic-{layout}-{num_train_ids}ids-{images_per_camera}img{suffix}"


def prepare_dataset(
    dataset: str,
    data_root: str | os.PathLike[str],
    *,
    synthetic_layout: str = "sysu",
    synthetic_ids: int = 48,
    synthetic_images: int = 4,
    regdb_trial: int = 1,
    synthetic_modality_evidence: float = 0.0,
) -> VIDataset:
    """Parse the dataset a notebook works on.

    ``dataset="synthetic"`` writes (once; later calls reuse it) the embedded synthetic dataset in the official
    layout ``synthetic_layout`` under ``data_root`` (:func:`synthetic_root`) and parses it with the real parser, so
    the returned dataset is named ``"sysu"``, ``"regdb"`` or ``"llcm"``. Real datasets are parsed from ``data_root``.

    Args:
        dataset: ``"synthetic"``, ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        data_root: The real dataset's folder, or the folder that holds the synthetic datasets.
        synthetic_layout: Layout of the synthetic dataset.
        synthetic_ids: Training identities of the synthetic dataset (test identities: half as many; RegDB: as many).
        synthetic_images: Images per person per camera of the synthetic dataset.
        regdb_trial: RegDB split (1..10).
        synthetic_modality_evidence: Identity evidence visible in one modality only, in [0, 1] (0: none).

    Raises:
        ParameterError: Bad values (named).
        FileNotFoundError: A real dataset's folder or files are missing (raised by the parser, naming the file).
    """
    check_params(
        dataset=dataset,
        data_root=os.fspath(data_root),
        synthetic_layout=synthetic_layout,
        synthetic_ids=synthetic_ids,
        synthetic_images=synthetic_images,
        regdb_trial=regdb_trial,
        synthetic_modality_evidence=synthetic_modality_evidence,
    )
    if dataset == "synthetic":
        root = write_synthetic(
            synthetic_root(data_root, synthetic_layout, synthetic_ids, synthetic_images, synthetic_modality_evidence),
            modality_specific_evidence=synthetic_modality_evidence,
            layout=synthetic_layout,
            num_train_ids=synthetic_ids,
            images_per_camera=synthetic_images,
        )
        name = synthetic_layout
    else:
        root, name = Path(data_root), dataset
    kwargs: dict[str, Any] = {"trial": regdb_trial} if name == "regdb" else {}
    return build_dataset(name, root, **kwargs)


EXPECTED_STATISTICS: dict[str, dict[str, int]] = {
    "sysu": {
        "num_train_ids": 395,
        "train.per_modality.visible.images": 22258,
        "train.per_modality.infrared.images": 11909,
        "query.ids": 96,
        "query.images": 3803,
        "gallery.ids": 96,
    },
    "regdb": {
        "num_train_ids": 206,
        "train.per_modality.visible.images": 2060,
        "train.per_modality.infrared.images": 2060,
        "query.ids": 206,
        "query.images": 2060,
        "gallery.ids": 206,
        "gallery.images": 2060,
    },
    "llcm": {
        "num_train_ids": 713,
        "train.per_modality.visible.images": 16946,
        "train.per_modality.infrared.images": 13975,
        "query.ids": 351,
        "gallery.ids": 351,
    },
}
"""Published statistics of the real releases (SYSU-MM01: Wu et al. ICCV 2017; RegDB: Nguyen et al. 2017, one
split; LLCM: Zhang & Wang CVPR 2023), keyed like the flattened :func:`idkl_lib.data.dataset_statistics`."""


def expected_statistics(
    dataset: str, synthetic_layout: str = "sysu", synthetic_ids: int = 48, synthetic_images: int = 4
) -> dict[str, int]:
    """What :func:`idkl_lib.data.dataset_statistics` should find: the published numbers for a real dataset, the
    numbers implied by the generator's arguments for the synthetic one (keys as in :data:`EXPECTED_STATISTICS`)."""
    if dataset != "synthetic":
        return dict(EXPECTED_STATISTICS[dataset])
    n_test = synthetic_ids if synthetic_layout == "regdb" else max(1, synthetic_ids // 2)
    expected = {"num_train_ids": synthetic_ids, "query.ids": n_test, "gallery.ids": n_test}
    if synthetic_layout == "sysu":  # every person in all six cameras: 4 visible, 2 infrared
        expected |= {
            "train.per_modality.visible.images": synthetic_ids * 4 * synthetic_images,
            "train.per_modality.infrared.images": synthetic_ids * 2 * synthetic_images,
            "query.images": n_test * 2 * synthetic_images,
            "gallery.images": n_test * 4 * synthetic_images,
        }
    elif synthetic_layout == "regdb":  # one visible and one thermal camera
        per_split = synthetic_ids * synthetic_images
        expected |= {
            "train.per_modality.visible.images": per_split,
            "train.per_modality.infrared.images": per_split,
            "query.images": n_test * synthetic_images,
            "gallery.images": n_test * synthetic_images,
        }
    return expected


def _lookup(stats: Mapping[str, Any], dotted: str) -> Any:
    value: Any = stats
    for part in dotted.split("."):
        value = value[part]
    return value


CARD_LABELS: dict[str, str] = {
    "num_train_ids": "training identities",
    "train.per_modality.visible.images": "training images, visible",
    "train.per_modality.infrared.images": "training images, infrared",
    "query.ids": "query identities (infrared)",
    "query.images": "query images (infrared)",
    "gallery.ids": "gallery identities (visible)",
    "gallery.images": "gallery images (visible)",
}
"""Readable names of the dataset-card quantities."""


def dataset_card(statistics: Mapping[str, Any], expected: Mapping[str, int]) -> list[dict[str, Any]]:
    """Compare dataset statistics with the expected numbers.

    Args:
        statistics: Output of :func:`idkl_lib.data.dataset_statistics`.
        expected: ``{dotted key: number}`` (see :func:`expected_statistics`).

    Returns:
        One row per expected number: ``{"key", "quantity" (readable), "found", "expected", "ok"}``.
    """
    rows = []
    for key, value in expected.items():
        found = _lookup(statistics, key)
        rows.append(
            {"key": key, "quantity": CARD_LABELS.get(key, key), "found": found, "expected": value, "ok": found == value}
        )
    return rows


def dataset_card_figure(card: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """The dataset card as a table: quantity, found, expected and a check mark per row."""
    marks = ["✓" if row["ok"] else "✗ differs" for row in card]
    table = go.Table(
        header={
            "values": ["<b>quantity</b>", "<b>found</b>", "<b>expected</b>", "<b>check</b>"],
            "fill_color": "#DDE6F0",
        },
        cells={
            "values": [
                [row["quantity"] for row in card],
                [f"{row['found']:,}" for row in card],
                [f"{row['expected']:,}" for row in card],
                marks,
            ],
            "align": ["left", "right", "right", "center"],
            "height": 26,
        },
    )
    return style_figure(go.Figure(table), title, height=150 + 28 * len(card), margin={"t": 60, "b": 10})


def statistics_table(statistics: Mapping[str, Any], title: str) -> go.Figure:
    """Identities, images and cameras per split and modality, from :func:`idkl_lib.data.dataset_statistics`."""
    rows: list[list[str]] = []
    for split in ("train", "query", "gallery"):
        for modality, entry in statistics[split]["per_modality"].items():
            if entry["images"]:
                cams = ", ".join(map(str, entry["cameras"]))
                rows.append([split, modality, f"{entry['ids']:,}", f"{entry['images']:,}", cams])
    table = go.Table(
        header={
            "values": [f"<b>{h}</b>" for h in ("split", "modality", "identities", "images", "cameras")],
            "fill_color": "#DDE6F0",
        },
        cells={"values": list(map(list, zip(*rows, strict=True))), "align": ["left", "left", "right", "right", "left"]},
    )
    return style_figure(go.Figure(table), title, height=150 + 28 * len(rows), margin={"t": 60, "b": 10})


def image_sizes(samples: Sequence[Sample], max_images: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(height, width)`` of the image files (read from the headers) of at most ``max_images`` random records.

    Returns:
        ``(sizes (N, 2) int, modality (N,) int)``.
    """
    from PIL import Image

    chosen = subsample(samples, max_images, seed)
    sizes = np.zeros((len(chosen), 2), dtype=np.int64)
    for i, sample in enumerate(chosen):
        with Image.open(sample.path) as img:
            sizes[i] = (img.size[1], img.size[0])
    return sizes, np.array([s.modality for s in chosen], dtype=np.int64)


def subsample(samples: Sequence[Sample], max_items: int, seed: int = 0) -> list[Sample]:
    """At most ``max_items`` records drawn without replacement (all of them, in order, when there are fewer)."""
    if len(samples) <= max_items:
        return list(samples)
    index = np.sort(np.random.default_rng(seed).choice(len(samples), max_items, replace=False))
    return [samples[i] for i in index]


def identity_camera_rows(
    samples: Sequence[Sample], pid: int, per_camera: int = 4
) -> tuple[list[list[Sample]], list[str]]:
    """Images of one identity grouped by camera (visible cameras first), for :func:`idkl_lib.viz.sample_grid`.

    Returns:
        ``(rows, labels)``: one row of at most ``per_camera`` records per camera and its label ``"cam 3 · IR"``.
    """
    by_cam: dict[tuple[int, int], list[Sample]] = {}
    for s in samples:
        if s.pid == pid:
            by_cam.setdefault((s.modality, s.camid), []).append(s)
    if not by_cam:
        raise ValueError(f"identity {pid} has no images in this split")
    keys = sorted(by_cam)
    labels = [f"cam {cam} · {'IR' if mod == INFRARED else 'VIS'}" for mod, cam in keys]
    return [by_cam[key][:per_camera] for key in keys], labels


def load_images(samples: Sequence[Sample], height: int, width: int) -> torch.Tensor:
    """The test-time model inputs of some records: ``(N, 3, H, W)`` normalised tensors."""
    transform = build_transforms(height, width, train=False)
    return torch.stack([transform(load_rgb(s.path)) for s in samples])


# ------------------------------------------------------------------------------------------------- models


def load_trained_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[IDKLModel, TrainConfig, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint written by :func:`idkl_lib.train.train`.

    The architecture comes from the training configuration stored in the checkpoint; the weights are the
    checkpoint's (no ImageNet download). The model is returned in eval mode on ``device``.

    Returns:
        ``(model, training config, checkpoint dict)``.

    Raises:
        FileNotFoundError / idkl_lib.checkpoint.CheckpointError: Missing or unreadable file.
        ValueError: The stored configuration does not build a model matching the weights.
    """
    from idkl_lib.utils.runtime import resolve_device

    state = load_checkpoint(checkpoint)
    config = dict(state["config"])
    config["milestones"] = tuple(config.get("milestones", ()))
    known = {name for name in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**{key: value for key, value in config.items() if key in known})
    num_classes = state.get("extra", {}).get("num_classes")
    if num_classes is None:  # older checkpoints: the classifier's row count
        num_classes = int(state["model_state"]["classifier_sh.weight"].shape[0])
    model_cfg = cfg.model_config(int(num_classes))
    model = build_model(dataclasses.replace(model_cfg, pretrained=False))  # the weights come from the checkpoint
    load_model_state(model, state["model_state"])
    return model.to(resolve_device(device)).eval(), cfg, state


def untrained_model(cfg: TrainConfig, num_classes: int, device: str | torch.device = "cpu") -> IDKLModel:
    """The network of ``cfg`` as training starts (same seed, same initialisation), in eval mode: the reference
    that shows how much of a score is learned."""
    from idkl_lib.utils.runtime import seed_everything

    seed_everything(cfg.seed)
    return build_model(cfg.model_config(num_classes)).to(device).eval()


@dataclass(frozen=True)
class FeatureView:
    """One feature shown by the Grad-CAM and embedding notebooks.

    Attributes:
        name: Short key (``"shared"``, ``"specific"``, ``"enhanced"``).
        label: Display label.
        model: Which model computes it: ``"baseline"`` (trained without distillation) or ``"idkl"``.
        which: ``IDKLModel.embed``'s branch.
    """

    name: str
    label: str
    model: str
    which: str


FEATURE_VIEWS: tuple[FeatureView, ...] = (
    FeatureView("shared", "shared (w/o distillation)", "baseline", "shared"),
    FeatureView("specific", "specific (IDKL)", "idkl", "specific"),
    FeatureView("enhanced", "enhanced shared (IDKL)", "idkl", "shared"),
)
"""The paper's three features: the modality-shared feature of a model trained without knowledge distillation, the
modality-specific feature of the IDKL model, and the IDKL model's shared feature, enhanced by the specific
knowledge distilled into it (TGSA, CSA)."""


# --------------------------------------------------------------------------------------------------- train


def loss_figure(
    history: Sequence[Mapping[str, float]], title: str, smoothing: float = 0.6, log_y: bool = True
) -> go.Figure:
    """:func:`idkl_lib.viz.loss_curves` of a training history, on a log axis clipped to five decades below the
    largest value (a term that falls to exactly zero, e.g. a satisfied margin, would otherwise stretch the axis)."""
    fig = loss_curves(history, smoothing=smoothing, title=title, log_y=log_y)
    values = [v for row in history for k, v in row.items() if k not in ("step", "epoch", "lr") and v > 0]
    if log_y and values and all(math.isfinite(v) for v in values):
        top = math.log10(max(values))
        fig.update_yaxes(range=[top - 5.0, top + 0.2])
    return fig


class LiveLossPlot:
    """A loss-curve figure that redraws in place while :func:`idkl_lib.train.train` runs (pass it as ``on_log``).

    In JupyterLab the figure updates live; in a papermill run the executed notebook keeps the last drawing (show one
    figure with ``fig.show()`` before training, so that the HTML export has plotly.js; see :func:`setup_notebook`).
    Redraws are throttled (at most one per ``min_interval`` seconds, and only every ``every`` logged rows), so a long
    run does not spend its time drawing; call :meth:`redraw` once after training for the final state.

    Args:
        title: Figure title.
        every: Redraw at most every this many logged rows.
        smoothing: EMA smoothing of the curves (:func:`idkl_lib.viz.loss_curves`).
        min_interval: Minimum seconds between two automatic redraws.
        log_y: Logarithmic loss axis (the terms span several orders of magnitude).
    """

    def __init__(
        self,
        title: str = "Training losses",
        every: int = 1,
        smoothing: float = 0.6,
        min_interval: float = 2.0,
        log_y: bool = True,
    ) -> None:
        self.title, self.every, self.smoothing = title, max(1, int(every)), smoothing
        self.min_interval, self.log_y = float(min_interval), log_y
        self.history: list[dict[str, float]] = []
        self._handle: Any = None
        self._last = -math.inf

    def __call__(self, row: Mapping[str, float]) -> None:
        self.history.append(dict(row))
        if len(self.history) % self.every == 0 and time.monotonic() - self._last >= self.min_interval:
            self.redraw()

    def figure(self) -> go.Figure:
        """The current loss curves (x = step, one line per weighted term plus the total)."""
        return loss_figure(self.history, self.title, smoothing=self.smoothing, log_y=self.log_y)

    def redraw(self) -> None:
        """Draw (first call) or update the figure in the notebook output."""
        from IPython.display import display

        if not self.history:
            return
        bundle = _mime_bundle(self.figure())
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        self._last = time.monotonic()


def _mime_bundle(fig: go.Figure) -> dict[str, Any]:
    """The figure's output for the default renderers, without re-running their activation.

    A display id needs the raw bundle (plotly's ``_ipython_display_`` ignores display ids), and
    ``fig._repr_mimebundle_()`` re-activates the ``notebook`` renderer on every call, which embeds another copy of
    plotly.js (about 5 MB) in the notebook each time. The first figure shown with ``fig.show()`` loads plotly.js once.
    """
    import plotly.io as pio

    fig_dict = fig.to_dict()
    bundle: dict[str, Any] = {}
    for name in (pio.renderers.default or NOTEBOOK_RENDERER).split("+"):
        renderer = pio.renderers[name]
        if hasattr(renderer, "to_mimebundle"):
            bundle.update(renderer.to_mimebundle(fig_dict))
    return bundle


def final_losses(history: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of every logged term over the last epoch of a training history (``{term: value}``)."""
    if not history:
        return {}
    last = max(row.get("epoch", 0.0) for row in history)
    rows = [row for row in history if row.get("epoch", 0.0) == last]
    keys = [key for key in rows[0] if key not in ("step", "epoch", "lr")]
    return {key: float(np.mean([row[key] for row in rows if key in row])) for key in keys}


# ------------------------------------------------------------------------------------------------ evaluate


def rank_view(
    dataset: VIDataset, query_feats: torch.Tensor, gallery_feats: torch.Tensor, trial: int = 0
) -> dict[str, Any]:
    """One gallery trial of the dataset's main protocol, ready for the rank-list viewer.

    SYSU-MM01: all-search single-shot, trial ``trial`` of ``rand_perm_cam`` (camera 3 treated as camera 2).
    RegDB: thermal -> visible over the whole gallery. LLCM: infrared -> visible, trial ``trial`` of the official
    sampling (the viewer drops every same-camera image, slightly more than LLCM's same-identity rule). Distances are
    Euclidean on L2-normalised features, as in the evaluation.

    Returns:
        ``{"name", "distmat" (Q, G) numpy, "query" records, "gallery" records, "camera_alias"}``.
    """
    from idkl_lib.data.sysu_perm import read_rand_perm_cam
    from idkl_lib.eval import llcm_gallery_trials, sysu_gallery_trials

    gallery_index = np.arange(len(dataset.gallery))
    alias: dict[int, int] = {}
    if dataset.name == "sysu":
        table = read_rand_perm_cam(str(dataset.meta["rand_perm_cam"]))
        gallery_index = sysu_gallery_trials(dataset.gallery, table, "all", 1, trial + 1)[trial]
        name, alias = "sysu/all-search/single-shot", {3: 2}
    elif dataset.name == "llcm":
        gallery_index = llcm_gallery_trials(dataset.gallery, trial + 1)[trial]
        name = "llcm/ir-to-vis"
    else:
        name = "regdb/thermal-to-visible"
    q = torch.nn.functional.normalize(query_feats.float(), dim=1)
    g = torch.nn.functional.normalize(gallery_feats.float()[torch.as_tensor(gallery_index)], dim=1)
    distmat = pairwise_distance(q, g, metric="euclidean").numpy()
    gallery = [dataset.gallery[i] for i in gallery_index]
    return {
        "name": f"{name} (trial {trial + 1})",
        "distmat": distmat,
        "query": list(dataset.query),
        "gallery": gallery,
        "camera_alias": alias,
    }


# ------------------------------------------------------------------------------------------------- Grad-CAM


def gradcam_pairs(dataset: VIDataset, num_per_modality: int = 2, seed: int = 0) -> list[tuple[Sample, Sample]]:
    """(query, matched) test pairs for Grad-CAM: infrared queries with a visible image of the same person, then
    visible queries with an infrared one, each from a different identity, chosen reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    infrared = [s for s in (*dataset.query, *dataset.gallery) if s.modality == INFRARED]
    visible = [s for s in (*dataset.query, *dataset.gallery) if s.modality == VISIBLE]
    pairs: list[tuple[Sample, Sample]] = []
    used: set[int] = set()
    for queries, others in ((infrared, visible), (visible, infrared)):
        by_pid: dict[int, list[Sample]] = {}
        for s in others:
            by_pid.setdefault(s.pid, []).append(s)
        candidates = [s for s in queries if s.pid in by_pid and s.pid not in used]
        taken = 0
        for i in rng.permutation(len(candidates)):
            query = candidates[int(i)]
            if query.pid in used:
                continue
            matches = by_pid[query.pid]
            pairs.append((query, matches[int(rng.integers(len(matches)))]))
            used.add(query.pid)
            taken += 1
            if taken == num_per_modality:
                break
    if not pairs:
        raise ValueError(f"{dataset.name}: no identity has test images in both modalities")
    return pairs


def view_cams(
    models: Mapping[str, nn.Module],
    query_images: torch.Tensor,
    matched_images: torch.Tensor,
    views: Sequence[FeatureView] = FEATURE_VIEWS,
    method: str = "gradcam",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Similarity Grad-CAMs of the queries for every feature view (the paper's Figure 4).

    For each view, the CAM target is the cosine similarity between a query's embedding and the embedding of its
    matched image, both from that view's model and branch (:func:`idkl_lib.viz.similarity_cam`).

    Args:
        models: ``{"idkl": model, "baseline": model}`` (the keys the views name).
        query_images: ``(N, 3, H, W)`` normalised queries.
        matched_images: ``(N, 3, H, W)`` their matched images of the other modality.
        views: The features to explain.
        method: pytorch-grad-cam method name (:data:`idkl_lib.viz.CAM_METHODS`).

    Returns:
        ``({view label: (N, H, W) CAMs}, {view label: (N,) query-match cosine similarities})``.
    """
    from idkl_lib.viz.gradcam import embed_images, similarity_cam

    cams: dict[str, np.ndarray] = {}
    sims: dict[str, np.ndarray] = {}
    for view in views:
        model = model_for_view(view, models)
        refs = embed_images(model, matched_images, which=view.which)
        own = embed_images(model, query_images, which=view.which)
        cams[view.label] = similarity_cam(model, query_images, refs, which=view.which, method=method)
        sims[view.label] = torch.nn.functional.cosine_similarity(own, refs, dim=1).numpy()
    return cams, sims


def cam_statistics(cams: np.ndarray, box: tuple[float, float, float, float] = (0.2, 0.8, 0.0, 1.0)) -> dict[str, float]:
    """Summary numbers of a stack of CAMs ``(N, H, W)`` in ``[0, 1]``.

    Args:
        cams: The maps.
        box: ``(x0, x1, y0, y1)`` fractions of the image: the central band where re-ID crops put the person.

    Returns:
        ``mean_cam`` (mean activation), ``box_mass`` (share of the CAM mass inside the box; a uniform map gives the
        box's area share ``box_area``) and ``top10_mass`` (share of the mass on the brightest 10% of pixels: how
        concentrated the attention is; 0.1 for a uniform map).
    """
    maps = np.asarray(cams, dtype=np.float64)
    n, h, w = maps.shape
    x0, x1, y0, y1 = box
    mask = np.zeros((h, w), dtype=bool)
    mask[int(round(y0 * h)) : int(round(y1 * h)), int(round(x0 * w)) : int(round(x1 * w))] = True
    total = maps.reshape(n, -1).sum(1)
    safe = np.where(total > 0, total, 1.0)
    box_mass = maps[:, mask].sum(1) / safe
    flat = np.sort(maps.reshape(n, -1), axis=1)[:, ::-1]
    top = flat[:, : max(1, int(round(0.1 * h * w)))].sum(1) / safe
    return {
        "mean_cam": float(maps.mean()),
        "box_mass": float(box_mass.mean()),
        "box_area": float(mask.mean()),
        "top10_mass": float(top.mean()),
    }


# --------------------------------------------------------------------------------------------- embeddings


def modality_gap_figure(stats: Mapping[str, Mapping[str, float]], title: str = "Modality gap per feature") -> go.Figure:
    """Bars of the modality-gap numbers of :func:`idkl_lib.viz.modality_gap_stats`, one group per feature.

    Left: mean cosine distance of visible-infrared pairs of the same identity and of different identities (a small
    same/different ratio = the modalities are bridged). Right: silhouette by modality (0 or below = mixed) and by
    identity (higher = identities form clusters).
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["cross-modality distance (cosine)", "silhouette"],
        horizontal_spacing=0.12,
    )
    names = list(stats)
    panels = (
        (1, "cross_same_id", "same identity"),
        (1, "cross_diff_id", "different identities"),
        (2, "silhouette_modality", "by modality"),
        (2, "silhouette_identity", "by identity"),
    )
    for i, (col, key, label) in enumerate(panels):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[stats[n][key] for n in names],
                name=label,
                marker={"color": OKABE_ITO[i]},
                text=[f"{stats[n][key]:.3f}" for n in names],
                textposition="outside",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="feature", row=1, col=col)
    fig.update_yaxes(title_text="mean cosine distance", row=1, col=1)
    fig.update_yaxes(title_text="silhouette score", row=1, col=2)
    return style_figure(fig, title, barmode="group", legend_title_text="quantity", width=1100, height=480)


def model_for_view(view: FeatureView, models: Mapping[str, nn.Module]) -> nn.Module:
    """The model of ``models`` (keys ``"idkl"``, ``"baseline"``) that computes ``view``."""
    if view.model not in models:
        raise KeyError(f"feature {view.name!r} needs the {view.model!r} model; got {sorted(models)}")
    return models[view.model]
