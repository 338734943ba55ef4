"""Re-export of :mod:`idkl_lib.distances` (the one distance implementation) for code that imports it from here."""

from idkl_lib.distances import Metric, off_diagonal, pairwise_distance

__all__ = ["Metric", "off_diagonal", "pairwise_distance"]
