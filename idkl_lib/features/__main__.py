"""``python -m idkl_lib.features``: see :mod:`idkl_lib.features.cli`."""

from .cli import main

raise SystemExit(main())
