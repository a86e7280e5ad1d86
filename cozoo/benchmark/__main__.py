"""``python -m cozoo.benchmark [speed|core|flops] [KEY=VALUE ...]``."""

from .cli import main

main()
