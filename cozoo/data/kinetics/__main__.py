"""``python -m cozoo.data.kinetics scan ROOT ...`` / ``... sample ...`` (see :func:`cli.main`)."""

import sys

from .cli import main

sys.exit(main())
