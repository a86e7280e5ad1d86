"""``python -m cozoo.data.thumos scan | sample ...`` (see :func:`cli.main`)."""

import sys

from .cli import main

sys.exit(main())
