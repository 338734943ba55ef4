"""``python -m idkl_lib.search``: see :mod:`idkl_lib.search.cli`."""

from .cli import main

raise SystemExit(main())
