"""``python -m cozoo.data.ntu prepare | scan | sample ...`` (see :func:`cli.main`)."""

import sys

from .cli import main

sys.exit(main())
