"""``python -m idkl_lib.train`` (and ``torchrun ... -m idkl_lib.train``): see :mod:`idkl_lib.train.cli`."""

from idkl_lib.train.cli import main

raise SystemExit(main())
