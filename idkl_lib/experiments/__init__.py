"""Experiments over many runs, each module with its command:

* :mod:`~idkl_lib.experiments.sweep`: parameter grids, one pipeline run per cell
  (``python -m idkl_lib.experiments.sweep``); the grid and experiment file in :mod:`~idkl_lib.experiments.grid`, the
  sweep folder's bookkeeping in :mod:`~idkl_lib.experiments.sweep_state`, where cells run in
  :mod:`~idkl_lib.experiments.executors` (this machine, ``--jobs``) and :mod:`~idkl_lib.experiments.cluster` (Slurm
  through submitit);
* :mod:`~idkl_lib.experiments.compare`: configurations over seeds, paired differences with intervals
  (``python -m idkl_lib.experiments.compare``);
* :mod:`~idkl_lib.experiments.term_analysis`: why a loss term helps or not
  (``python -m idkl_lib.experiments.term_analysis``);
* :mod:`~idkl_lib.experiments.results_doc`: the tables of ``docs/results.md`` from committed sweep results, checked
  against the page (``python -m idkl_lib.experiments.results_doc``).
"""
