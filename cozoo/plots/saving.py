"""Writing a finished matplotlib figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

__all__ = ["save_figure"]


def save_figure(fig: Any, out: Union[str, Path]) -> Path:
    """Lay out ``fig``, write it to ``out`` (parent folders made), close it; returns ``out``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
