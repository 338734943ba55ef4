"""Experiments over many runs, each module with its command:

* :mod:`~idkl_lib.experiments.sweep`: parameter grids, one pipeline run per cell
  (``python -m idkl_lib.experiments.sweep``);
* :mod:`~idkl_lib.experiments.compare`: configurations over seeds, paired differences with intervals
  (``python -m idkl_lib.experiments.compare``);
* :mod:`~idkl_lib.experiments.term_analysis`: why a loss term helps or not
  (``python -m idkl_lib.experiments.term_analysis``);
* :mod:`~idkl_lib.experiments.results_doc`: the tables of ``docs/results.md`` from committed sweep results, checked
  against the page (``python -m idkl_lib.experiments.results_doc``).
"""
