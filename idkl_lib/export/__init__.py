"""ONNX export of a checkpoint's retrieval path with a parity check (``python -m idkl_lib.export``)."""

from .onnx_export import DEFAULT_TOLERANCE, ExportResult, ParityError, ParityReport, compare, export_onnx, parity_batch

__all__ = ["DEFAULT_TOLERANCE", "ExportResult", "ParityError", "ParityReport", "compare", "export_onnx", "parity_batch"]
