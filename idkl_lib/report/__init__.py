"""A run folder's report: ``index.html`` (:mod:`~idkl_lib.report.index`) with its first screen
(:mod:`~idkl_lib.report.summary`), the slide decks (:mod:`~idkl_lib.report.slides`) and the pages' local MathJax
(:mod:`~idkl_lib.report.mathjax`)."""

from idkl_lib.report.index import write_index

__all__ = ["write_index"]
