"""``python -m cozoo.stream [KEY=VALUE ...]`` (see :mod:`cozoo.stream`)."""

from .cli import main

if __name__ == "__main__":
    main()
