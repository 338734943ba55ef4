"""``python -m idkl_lib.export``: see :mod:`idkl_lib.export.cli`."""

from .cli import main

raise SystemExit(main())
