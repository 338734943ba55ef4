"""idkl_lib: a visible-infrared person re-identification workbench built around IDKL (CVPR 2024)."""

__version__ = "0.1.0"
