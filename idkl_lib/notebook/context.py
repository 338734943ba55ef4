"""One run context for notebooks 01-05: the run folder and its data are set once.

The JupyterLab path (each notebook opened from ``notebooks/`` and run with its defaults):

* notebook 01 (or 02 when it runs first) writes the run's data settings (:class:`DataSettings`: dataset, its folder,
  the synthetic sizes, the RegDB trial) into ``<run_dir>/context.json``, and, run interactively (``step_dir=""``),
  remembers the run folder in ``../reports/current_run.json`` (:data:`CURRENT_RUN`);
* in 02-05 ``run_dir=""`` is that run folder (``../reports/dev`` when none was set up) and ``step_dir=""`` is
  ``<run_dir>/<step name>`` (:func:`open_run`, which prints both);
* 02's data parameters left at ``None`` are the run's data settings (:meth:`RunFolder.data_settings`); explicit ones
  that differ from them are an error unless ``overwrite=True``;
* 03-05's data parameters left at ``None`` are the data the checkpoint was trained on (:func:`checkpoint_data`, read
  from the ``TrainConfig`` stored in the checkpoint); other data is an error naming both unless
  ``allow_other_dataset=True``.

The pipeline and the sweeps pass ``run_dir`` and ``step_dir`` themselves: they never read or write the pointer, and the
data parameters they pass are the same for every step, so the context only repeats them.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idkl_lib.data.card import synthetic_root
from idkl_lib.data.marker import read_marker
from idkl_lib.data.records import VIDataset
from idkl_lib.data.registry import build_dataset
from idkl_lib.data.synthetic import write_synthetic
from idkl_lib.notebook.params import ParameterError, check_params
from idkl_lib.report.index import write_index
from idkl_lib.runs import CHECKPOINT_NAME, CONTEXT_NAME, TRAIN_STEP, read_context, read_json, step_path
from idkl_lib.utils.errors import ShortMessage
from idkl_lib.utils.io import atomic_write_json

if TYPE_CHECKING:
    from idkl_lib.config import TrainConfig

__all__ = [
    "CURRENT_RUN",
    "DATA_PARAMS",
    "DEFAULT_RUN_DIR",
    "DEFAULT_RUN_TAG",
    "DataMismatchError",
    "DataSettings",
    "RunFolder",
    "checkpoint_data",
    "open_run",
    "prepare_dataset",
    "train_step_name",
]

DEFAULT_RUN_DIR = Path("../reports/dev")
"""Where interactive runs write (relative to ``notebooks/``, the working folder of every notebook)."""
CURRENT_RUN = Path("../reports/current_run.json")
"""The pointer to the run folder set up last by notebook 01 or 02 run interactively."""
DEFAULT_RUN_TAG = "idkl"
"""Notebook 02's ``run_tag`` that trains into ``<run_dir>/02_train``; another tag trains into ``02_train_<tag>``."""
DATA_PARAMS = (
    "dataset",
    "data_root",
    "synthetic_layout",
    "synthetic_ids",
    "synthetic_images",
    "synthetic_modality_evidence",
    "regdb_trial",
)
"""The notebook parameters that make a run's data."""

_SYNTHETIC_NAME = re.compile(
    r"synthetic-(?P<layout>[a-z]+)-(?P<ids>\d+)ids-(?P<images>\d+)img(?:-ev(?P<ev>[0-9.e+-]+))?"
)


def prepare_dataset(
    dataset: str,
    data_root: str | os.PathLike[str],
    *,
    synthetic_layout: str = "sysu",
    synthetic_ids: int = 192,
    synthetic_images: int = 2,
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
        synthetic_modality_evidence: Identity evidence visible in one modality only, in [0, 1] (0: none; see
            :func:`~idkl_lib.data.write_synthetic`).

    Raises:
        idkl_lib.notebook.params.ParameterError: Bad values (named).
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
    return build_dataset(name, root, trial=regdb_trial)


class DataMismatchError(ShortMessage, ValueError):
    """A notebook asks for other data than its run (or its checkpoint) was set up with (in a notebook: the message
    alone, no traceback)."""


@dataclass(frozen=True)
class DataSettings:
    """The data of a run: what notebook 01's data parameters set (the defaults are its defaults: the demo).

    ``data_root`` is the real dataset's folder, or the folder holding the synthetic datasets (relative paths are
    relative to ``notebooks/``).
    """

    dataset: str = "synthetic"
    data_root: str = "../data"
    synthetic_layout: str = "sysu"
    synthetic_ids: int = 192
    synthetic_images: int = 2
    synthetic_modality_evidence: float = 0.0
    regdb_trial: int = 1

    def __post_init__(self) -> None:
        missing = [name for name, value in self.as_dict().items() if value is None]
        if missing:
            raise ParameterError(f"data settings without a value for {', '.join(missing)}")
        check_params(**self.as_dict())

    @property
    def name(self) -> str:
        """The dataset's layout name (``"sysu"``, ``"regdb"``, ``"llcm"``), as the parsed dataset is named."""
        return self.synthetic_layout if self.dataset == "synthetic" else self.dataset

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **values: Any) -> DataSettings:
        """A copy with the values that are not ``None`` replaced."""
        given = {key: value for key, value in values.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self

    def identity(self) -> tuple[Any, ...]:
        """What makes two settings the same data (the folder of a release does not; the RegDB trial does)."""
        trial = self.regdb_trial if self.name == "regdb" else None
        if self.dataset == "synthetic":
            sizes = (self.synthetic_ids, self.synthetic_images, float(self.synthetic_modality_evidence))
            return ("synthetic", self.synthetic_layout, *sizes, trial)
        return (self.dataset, trial)

    def describe(self) -> str:
        """``synthetic sysu layout (192 ids, 2 images per camera) under ../data``, ``regdb trial 2 at /data/RegDB``."""
        trial = f" trial {self.regdb_trial}" if self.name == "regdb" else ""
        if self.dataset != "synthetic":
            return f"{self.dataset}{trial} at {self.data_root}"
        evidence = self.synthetic_modality_evidence
        extra = f", modality evidence {evidence:g}" if evidence else ""
        return (
            f"synthetic {self.synthetic_layout} layout{trial} ({self.synthetic_ids} ids, {self.synthetic_images} "
            f"images per camera{extra}) under {self.data_root}"
        )

    def prepare(self) -> VIDataset:
        """Parse the dataset (writing the synthetic one first, once): :func:`idkl_lib.data.card.prepare_dataset`."""
        values = self.as_dict()
        return prepare_dataset(values.pop("dataset"), values.pop("data_root"), **values)

    @classmethod
    def from_train_config(cls, cfg: TrainConfig) -> DataSettings:
        """The data a training configuration used: a synthetic dataset written by notebook 01/02 is recognised by its
        marker (or, once deleted, by its folder name, so it is written again), anything else is the release
        ``cfg.dataset`` at ``cfg.data_root``."""
        root = Path(cfg.data_root)
        marker = read_marker(root) if root.is_dir() else None
        sizes: dict[str, Any] | None
        if marker and marker.get("generator") == "idkl_lib.data.synthetic":
            sizes = {
                "synthetic_layout": marker.get("layout"),
                "synthetic_ids": marker.get("num_train_ids"),
                "synthetic_images": marker.get("images_per_camera"),
                "synthetic_modality_evidence": float(marker.get("modality_specific_evidence", 0.0)),
            }
        else:
            found = _SYNTHETIC_NAME.fullmatch(root.name) if marker is None else None
            sizes = found and {
                "synthetic_layout": found["layout"],
                "synthetic_ids": int(found["ids"]),
                "synthetic_images": int(found["images"]),
                "synthetic_modality_evidence": float(found["ev"] or 0.0),
            }
        if sizes:
            data = cls("synthetic", str(root.parent), regdb_trial=cfg.regdb_trial, **sizes)
            if synthetic_root(data.data_root, data.synthetic_layout, data.synthetic_ids, data.synthetic_images,
                              data.synthetic_modality_evidence).name == root.name:  # fmt: skip
                return data
        return cls(cfg.dataset, cfg.data_root, regdb_trial=cfg.regdb_trial)


def train_step_name(run_tag: str) -> str:
    """Notebook 02's step folder name: ``02_train`` for the default tag, ``02_train_<run_tag>`` otherwise (so
    ``run_tag="baseline"`` trains into ``02_train_baseline``, where notebooks 04 and 05 look for the baseline)."""
    if run_tag == DEFAULT_RUN_TAG:
        return TRAIN_STEP
    if not re.fullmatch(r"[A-Za-z0-9_-]+", run_tag):
        raise ParameterError(
            f"parameter run_tag={run_tag!r}: names the step folder {TRAIN_STEP}_<run_tag> when step_dir is empty; use "
            "only letters, digits, '_' and '-' (or give step_dir)"
        )
    return f"{TRAIN_STEP}_{run_tag}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class RunFolder:
    """The run folder a notebook works in and its own step folder.

    Attributes:
        path: The run folder.
        step: This notebook's output folder.
        interactive: ``step_dir`` was empty (JupyterLab): the run folder is remembered as the current one.
    """

    path: Path
    step: Path
    interactive: bool

    def context(self) -> DataSettings | None:
        """The data settings stored in ``<run_dir>/context.json``, or None when there are none."""
        content = read_context(self.path)
        if content is None:
            return None
        try:
            return DataSettings(**{name: content[name] for name in DATA_PARAMS})
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"the run's data settings {(self.path / CONTEXT_NAME).resolve()} are incomplete or invalid ({exc}); "
                "run notebook 01 again (it rewrites them)"
            ) from None

    def data_settings(self, *, overwrite: bool = False, **params: Any) -> DataSettings:
        """Notebook 02's data: the parameters that are not ``None``, the rest from the run's data settings (the
        demo's when the run has none).

        Raises:
            DataMismatchError: A parameter asks for other data than the run's settings and ``overwrite`` is False.
        """
        unknown = sorted(set(params) - set(DATA_PARAMS))
        if unknown:
            raise TypeError(f"unknown data parameter(s) {unknown}; data parameters: {', '.join(DATA_PARAMS)}")
        context = self.context()
        data = (context or DataSettings()).replace(**params)
        if context is not None and data.identity() != context.identity() and not overwrite:
            given = ", ".join(f"{name}={value!r}" for name, value in params.items() if value is not None)
            raise DataMismatchError(
                f"run folder {self.path} is set up for {context.describe()} ({CONTEXT_NAME}); {given} asks for "
                f"{data.describe()}. Leave the data parameters at None to use the run's data, set the data in "
                "notebook 01 (with a new run_dir for a new run), or pass overwrite=True to switch this run folder "
                "to the new data"
            )
        return data

    def set_data(self, data: DataSettings, step: str) -> Path:
        """Write ``data`` as the run's data settings (atomically) and, run interactively, remember the run folder
        as the current one; a change of the run's data is printed with what it leaves behind."""
        old = self.context()
        if old is not None and old.identity() != data.identity():
            print(f"run folder {self.path}: its data changes from {old.describe()} to {data.describe()}")
            if (self.path / TRAIN_STEP / CHECKPOINT_NAME).is_file():
                print(f"  its {TRAIN_STEP} checkpoint was trained on the old data: run notebook 02 again "
                      "(overwrite=True) before 03-05, or set up a new run_dir")  # fmt: skip
        record = {**data.as_dict(), "written_by": step, "written": _now()}
        if data.dataset != "synthetic" or not Path(data.data_root).is_absolute():
            record["data_root_resolved"] = str(Path(data.data_root).resolve())
        path = atomic_write_json(self.path / CONTEXT_NAME, record)
        if self.interactive:
            atomic_write_json(CURRENT_RUN, {"run_dir": str(self.path.resolve()), "set_by": step, "at": _now()})
        return path

    def write_report(self) -> Path | None:
        """Run interactively (JupyterLab), write the run's summary-first ``index.html`` as the pipeline does
        (:func:`idkl_lib.report.index.write_index`, from the step folders written so far) and print where it is;
        in the pipeline do nothing (it writes the report after its last step) and return None."""
        if not self.interactive:
            return None
        path = write_index(self.path)
        print(f"report: {path.resolve()} (open it in a browser; notebook 05 rewrites it when run again)")
        return path


def open_run(run_dir: str | os.PathLike[str], step: str, step_dir: str | os.PathLike[str] = "") -> RunFolder:
    """The run folder of a notebook (``run_dir``, or when empty the one set up last, see :data:`CURRENT_RUN`, else
    :data:`DEFAULT_RUN_DIR`) and its step folder (``step_dir``, or when empty ``<run_dir>/<step>``); one line printed
    says which and why."""
    if os.fspath(run_dir):
        path, why = Path(run_dir), "run_dir"
    else:
        pointer = read_json(CURRENT_RUN, expected=dict)
        remembered = Path(str(pointer.get("run_dir", ""))) if pointer else None
        if remembered is not None and remembered.is_dir():
            set_by = pointer.get("set_by", "01") if pointer else "01"
            path, why = remembered, f"set up last, by notebook {set_by}: {CURRENT_RUN}"
        else:
            path = DEFAULT_RUN_DIR
            why = "the default: no run folder set up yet" if remembered is None else f"{remembered} is gone"
    step_folder = Path(step_dir) if os.fspath(step_dir) else step_path(path, step)
    print(f"run folder {path} ({why}); this notebook writes {step_folder}")
    return RunFolder(path, step_folder, interactive=not os.fspath(step_dir))


def checkpoint_data(
    cfg: TrainConfig, checkpoint: str | os.PathLike[str], *, allow_other_dataset: bool = False, **params: Any
) -> DataSettings:
    """The data a notebook evaluates ``checkpoint`` on: the data parameters that are not ``None``, the rest the data
    it was trained on (``cfg``, its stored configuration); one line printed says which.

    Raises:
        DataMismatchError: The parameters ask for other data than the checkpoint was trained on (another dataset,
            synthetic layout or size, or RegDB trial, whose test identities may be the checkpoint's training ones)
            and ``allow_other_dataset`` is False.
    """
    trained = DataSettings.from_train_config(cfg)
    data = trained.replace(**params)
    if data.identity() != trained.identity():
        if not allow_other_dataset:
            given = ", ".join(f"{name}={value!r}" for name, value in params.items() if value is not None)
            raise DataMismatchError(
                f"checkpoint {checkpoint} was trained on {trained.describe()}, but {given} asks for "
                f"{data.describe()}. Leave the data parameters at None to use the checkpoint's data, or pass "
                "allow_other_dataset=True to use other data on purpose"
            )
        print(f"data: {data.describe()} (allow_other_dataset: {checkpoint} was trained on {trained.describe()})")
    else:
        print(f"data: {data.describe()} (what {checkpoint} was trained on)")
    return data
