"""``python -m idkl_lib.pretrain``: see :mod:`idkl_lib.pretrain.cli`."""

from idkl_lib.pretrain.cli import main

raise SystemExit(main())
