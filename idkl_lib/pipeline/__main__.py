"""``python -m idkl_lib.pipeline``: see :mod:`idkl_lib.pipeline.cli`."""

from idkl_lib.pipeline.cli import main

raise SystemExit(main())
