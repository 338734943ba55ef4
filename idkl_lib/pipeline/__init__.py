"""The notebooks run in order with papermill into a report folder ``reports/<run>/``: the runner
(:mod:`~idkl_lib.pipeline.run`), its steps, presets and parameters (:mod:`~idkl_lib.pipeline.steps`), one step's
execution (:mod:`~idkl_lib.pipeline.execute`) and the command line (:mod:`~idkl_lib.pipeline.cli`)::

    python -m idkl_lib.pipeline --run-dir reports/demo --preset demo
"""

from idkl_lib.pipeline.execute import PipelineError
from idkl_lib.pipeline.run import PipelineResult, StepResult, run_pipeline
from idkl_lib.pipeline.steps import DEFAULT_STEPS, PRESETS, Step, parse_param_value

__all__ = [
    "DEFAULT_STEPS",
    "PRESETS",
    "PipelineError",
    "PipelineResult",
    "Step",
    "StepResult",
    "parse_param_value",
    "run_pipeline",
]
