"""Package metadata (``continual.__about__`` compatible): all fields are ``str``."""

from cozoo import __version__

__all__ = [
    "__author__",
    "__author_email__",
    "__copyright__",
    "__docs__",
    "__homepage__",
    "__license__",
    "__version__",
]

__author__ = "cozoo developers"
__author_email__ = ""  # not published yet
__license__ = "Apache-2.0"
__copyright__ = f"Copyright (c) 2026, {__author__}."
__homepage__ = ""  # not published yet
__docs__ = (
    "cozoo.co: continual inference layers for PyTorch, API-compatible with "
    "continual-inference (`import continual as co` -> `from cozoo import co`)."
)
