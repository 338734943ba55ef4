"""TensorBoard logs of a training run: ``<out_dir>/tensorboard/``, watched with ``tensorboard --logdir reports/``.

:class:`TrainingBoard` receives what :func:`idkl_lib.train.train` already computes and writes it as scalars with
:class:`torch.utils.tensorboard.SummaryWriter`:

* ``loss/<term>`` every weighted loss term and ``loss/total``, one point per logged history row;
* ``train/lr`` the learning rate of that row, ``train/images_per_second`` one point per epoch;
* ``eval/<protocol>/<metric>`` the mean R1, R5, R10, R20, mAP and mINP of every evaluation protocol, for the
  ``eval_every`` evaluations and the final one (at the step it was made; reporting only, as in ``metrics.json``).

Only rank 0 writes. A fresh run removes the event files of an earlier run in the same folder; a resumed run
continues the same curves: it logs only the steps after the checkpoint's step, and its first event file starts
with TensorBoard's purge marker at that step, so points written after the checkpoint by the interrupted process
are dropped by the reader instead of appearing twice. (A run resumed after its last epoch trains nothing and does
not log its final evaluation again; ``metrics.json`` holds it.)

Logging never stops training: if the folder cannot be created or written (read-only file system, full disk), one
``RuntimeWarning`` names the folder and the cause, the board stops logging, and training and checkpoints go on.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from idkl_lib.runs import TENSORBOARD_DIR

__all__ = ["TENSORBOARD_DIR", "EVAL_METRICS", "TrainingBoard"]

EVAL_METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")
"""The mean metrics of each protocol result that are logged."""
_NOT_LOSSES = ("step", "epoch", "lr")


class TrainingBoard:
    """Scalars of one :func:`~idkl_lib.train.loop.train` call (see the module docstring).

    Use :meth:`open`; every method is a no-op once logging is disabled (rank other than 0, or a failed write).
    """

    def __init__(self, writer: Any, log_dir: Path, start_step: int) -> None:
        self._writer = writer
        self.log_dir = log_dir
        self.start_step = start_step

    @classmethod
    def open(cls, out_dir: str | Path, *, rank: int = 0, start_step: int = 0) -> TrainingBoard:
        """The board of a training folder: ``start_step`` is the resumed checkpoint's global step (0 for a fresh run).

        Never raises for an unwritable folder: it warns once and returns a board that logs nothing.
        """
        log_dir = Path(out_dir) / TENSORBOARD_DIR
        board = cls(None, log_dir, start_step)
        if rank != 0:
            return board
        try:
            from torch.utils.tensorboard import SummaryWriter

            if start_step == 0 and log_dir.is_dir():  # a new run in this folder: the old curves go
                for old in log_dir.glob("events.out.tfevents.*"):
                    old.unlink()
            # the purge marker makes readers drop points an interrupted process wrote after the checkpoint
            purge = start_step + 1 if start_step > 0 else None
            board._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge, flush_secs=10)
            board._writer.file_writer  # noqa: B018 (creates the event file now: a bad folder shows up here)
            weakref.finalize(board, _close_quietly, board._writer)  # a run stopped by an error still flushes
        except Exception as exc:  # logging must never stop training
            board._disable(exc)
        return board

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def _disable(self, exc: BaseException) -> None:
        writer, self._writer = self._writer, None
        warnings.warn(
            f"TensorBoard logging to {self.log_dir} stopped ({type(exc).__name__}: {exc}); training and checkpoints "
            "go on without TensorBoard logs. Free disk space or make the folder writable to log the next run.",
            RuntimeWarning,
            stacklevel=3,
        )
        if writer is not None:
            try:
                writer.close()
            except Exception:  # the writer already failed; its error was just reported
                pass

    def _write(self, action: Callable[[Any], None]) -> None:
        if self._writer is None:
            return
        try:
            action(self._writer)
        except Exception as exc:  # logging must never stop training
            self._disable(exc)

    def log_row(self, row: Mapping[str, float]) -> None:
        """One history row of the trainer (``step``, ``epoch``, ``lr``, ``total`` and the weighted loss terms)."""
        step = int(row["step"])
        if step <= self.start_step:
            return

        def action(writer: Any) -> None:
            for name, value in row.items():
                if name not in _NOT_LOSSES:
                    writer.add_scalar(f"loss/{name}", value, step)
            writer.add_scalar("train/lr", row["lr"], step)

        self._write(action)

    def wrap(self, on_log: Callable[[dict[str, float]], None] | None) -> Callable[[dict[str, float]], None] | None:
        """``on_log`` extended with :meth:`log_row` (``on_log`` itself when this board logs nothing)."""
        if not self.enabled:
            return on_log

        def both(row: dict[str, float]) -> None:
            self.log_row(row)
            if on_log is not None:
                on_log(row)

        return both

    def log_epoch(self, step: int, images: int, seconds: float) -> None:
        """An epoch's throughput (``images`` trained in ``seconds``), at its last step; flushes the event file."""
        if step <= self.start_step or seconds <= 0:
            return

        def action(writer: Any) -> None:
            writer.add_scalar("train/images_per_second", images / seconds, step)
            writer.flush()

        self._write(action)

    def log_metrics(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Evaluation results ``{protocol: ProtocolResult.as_dict()}`` made at ``step``; flushes the event file."""
        if step <= self.start_step or not metrics:
            return

        def action(writer: Any) -> None:
            for protocol, result in metrics.items():
                mean = result.get("mean", {}) if isinstance(result, Mapping) else {}
                for key in EVAL_METRICS:
                    value = mean.get(key)
                    if isinstance(value, int | float) and math.isfinite(value):
                        writer.add_scalar(f"eval/{protocol}/{key}", value, step)
            writer.flush()

        self._write(action)

    def close(self) -> None:
        """Write what is pending and close the event file."""
        self._write(lambda writer: writer.close())
        self._writer = None


def _close_quietly(writer: Any) -> None:
    try:
        writer.close()
    except Exception:  # at exit after an error: nothing left to report to
        pass
