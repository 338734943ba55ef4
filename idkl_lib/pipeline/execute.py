"""Executing one pipeline step: one notebook run with papermill, its HTML export and slide deck and, when it fails,
a :class:`PipelineError` that names the notebook, the cell and the exception."""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError

from idkl_lib.pipeline.steps import Step
from idkl_lib.report.offline import page_options
from idkl_lib.report.slides import export_slides, slides_path
from idkl_lib.runs import CHECKPOINT_NAME, FIGURES_DIR, KERNEL_LOG_SUFFIX, METRICS_NAME
from idkl_lib.runs.guard import RUN_RECORD_NAME
from idkl_lib.utils.io import atomic_write_text

__all__ = ["PipelineError"]


class PipelineError(RuntimeError):
    """A step failed. Fields name the step, notebook and, for a notebook error, the cell and the exception.

    Attributes:
        step: Step name.
        notebook: Source notebook path.
        executed_notebook: The (partial) executed notebook in the run folder, if written.
        html: Its HTML export, if written.
        cell_index: Index of the failing cell in the saved executed notebook (which holds papermill's injected
            parameters cell and error-marker cells); None if not a cell error.
        exec_count: Execution count of the failing cell (``In [n]``).
        ename: Exception class name raised in the notebook (or by the pipeline check).
        evalue: Exception message.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str,
        notebook: Path,
        executed_notebook: Path | None = None,
        html: Path | None = None,
        cell_index: int | None = None,
        exec_count: int | None = None,
        ename: str = "",
        evalue: str = "",
    ) -> None:
        super().__init__(message)
        self.step = step
        self.notebook = notebook
        self.executed_notebook = executed_notebook
        self.html = html
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored in ``status.json`` as ``failure``)."""
        return {
            "step": self.step,
            "notebook": str(self.notebook),
            "executed_notebook": None if self.executed_notebook is None else str(self.executed_notebook),
            "html": None if self.html is None else str(self.html),
            "cell_index": self.cell_index,
            "exec_count": self.exec_count,
            "ename": self.ename,
            "evalue": self.evalue,
            "message": str(self),
        }


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        known = sorted(manager.find_kernel_specs())
        raise ValueError(
            f"kernel {kernel_name!r} is not installed (available: {known or 'none'}); pass --kernel NAME or install "
            f"one into this environment: {sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}"
        ) from None


def _kernel_manager_class(log_path: Path | None = None) -> type:
    """The kernel manager papermill starts a step's kernel with.

    - Transport: CurveZMQ-encrypted whenever the libraries support it (ipykernel >= 7.4 declares it, jupyter_client
      >= 8.10 provisions the keys). An unencrypted TCP kernel logs "Kernel is running over TCP without encryption" on
      every start, i.e. once per step; an encrypted one has nothing to warn about. Older libraries: the default.
    - Kernel output: with ``log_path``, the kernel process writes its stdout and stderr there, not to the pipeline's.
      That is the kernel's own log (e.g. "KeyboardInterrupt caught in kernel": jupyter_client interrupts every kernel
      it shuts down, and whether the kernel logs it is a race) and messages from outside a cell; cell output travels
      over the kernel protocol into the notebook and is unaffected. Without it (JupyterLab's tests) they are inherited.
    """
    import zmq
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    encrypt = "transport_encryption" in AsyncKernelManager.class_trait_names() and zmq.has("curve")

    class StepKernelManager(AsyncKernelManager):
        if encrypt:

            @default("transport_encryption")
            def _transport_encryption_default(self) -> str:
                return "auto"

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if log_path is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
                return await super()._async_launch_kernel(kernel_cmd, **kw, stdout=log, stderr=log)

    return StepKernelManager


def _keep_kernel_log(log: Path) -> str:
    """Remove the step's kernel log when the kernel wrote nothing; ``"; kernel log: <path>"`` when it is kept, for an
    error message, else ``""``."""
    try:
        if log.stat().st_size:
            return f"; kernel log: {log}"
        log.unlink()
    except OSError:
        pass
    return ""


def _export_html(executed: Path, html_path: Path) -> Path | None:
    from nbconvert import HTMLExporter

    try:
        body, _ = HTMLExporter(**page_options(html_path.parent)).from_filename(str(executed))
    except Exception as exc:  # a broken export must not hide the step's own result
        warnings.warn(f"could not export {executed} to HTML: {exc}", stacklevel=2)
        return None
    return atomic_write_text(html_path, body)


def _error_cell_index(executed: Path, exc: PapermillExecutionError) -> int:
    """Index of the failing cell in the saved executed notebook (papermill's index predates its marker cells)."""
    try:
        nb = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):
        return int(exc.cell_index)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.get("execution_count") == exc.exec_count:
            if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
                return index
    return int(exc.cell_index)


def _execute_step(
    step: Step,
    notebook: Path,
    params: dict[str, Any],
    run_dir: Path,
    kernel_name: str,
    log_output: bool,
    progress_bar: bool | dict[str, Any] = False,
) -> tuple[Path, Path | None]:
    """Run one notebook; raise PipelineError on a notebook error or a missing metrics.json.

    ``progress_bar`` is papermill's: False, or tqdm options of the one bar over the notebook's cells.
    """
    step_dir = run_dir / step.name
    step_dir.mkdir(parents=True, exist_ok=True)
    (step_dir / METRICS_NAME).unlink(missing_ok=True)
    shutil.rmtree(step_dir / FIGURES_DIR, ignore_errors=True)
    if not params.get("resume"):  # a training step re-run from scratch replaces this run's model (the run-dir is
        for name in (CHECKPOINT_NAME, RUN_RECORD_NAME):  # claimed by the pipeline); "auto" or a path continues it
            (step_dir / name).unlink(missing_ok=True)
    executed = run_dir / f"{step.name}.ipynb"
    html_path = run_dir / f"{step.name}.html"
    html_path.unlink(missing_ok=True)  # a stale export must not pass for this run's
    slides_path(executed).unlink(missing_ok=True)
    kernel_log = run_dir / f"{step.name}{KERNEL_LOG_SUFFIX}"
    kernel_log.unlink(missing_ok=True)
    manager = _kernel_manager_class(kernel_log)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            kernel_name=kernel_name,
            progress_bar=progress_bar,
            log_output=log_output,
            cwd=str(notebook.parent),
            kernel_manager_class=manager,
        )
    except PapermillExecutionError as exc:
        html = _export_html(executed, html_path) if executed.is_file() else None
        cell_index = _error_cell_index(executed, exc)
        raise PipelineError(
            f"step {step.name!r} failed: notebook {notebook} raised {exc.ename}: {exc.evalue} in cell "
            f"In [{exc.exec_count}]; partial notebook: {executed} (cell {cell_index}){_keep_kernel_log(kernel_log)}",
            step=step.name,
            notebook=notebook,
            executed_notebook=executed if executed.is_file() else None,
            html=html,
            cell_index=cell_index,
            exec_count=exc.exec_count,
            ename=exc.ename,
            evalue=exc.evalue,
        ) from exc
    except Exception as exc:  # dead kernel, timeout, unreadable notebook, ...
        html = _export_html(executed, html_path) if executed.is_file() else None
        raise PipelineError(
            f"step {step.name!r} failed: running {notebook} raised {type(exc).__name__}: {exc}"
            f"{_keep_kernel_log(kernel_log)}",
            step=step.name,
            notebook=notebook,
            executed_notebook=executed if executed.is_file() else None,
            html=html,
            ename=type(exc).__name__,
            evalue=str(exc),
        ) from exc
    _keep_kernel_log(kernel_log)
    html = _export_html(executed, html_path)
    export_slides(executed)
    if not (step_dir / METRICS_NAME).is_file():
        raise PipelineError(
            f"step {step.name!r}: notebook {notebook} finished without writing {step_dir / METRICS_NAME}; "
            f"every notebook must write {METRICS_NAME} into step_dir (see the idkl_lib.pipeline.run docstring)",
            step=step.name,
            notebook=notebook,
            executed_notebook=executed,
            html=html,
            ename="MissingMetrics",
            evalue=f"{step_dir / METRICS_NAME} not written",
        )
    return executed, html
