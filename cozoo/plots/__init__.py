"""Plotting functions shared by the commands (``cozoo.stream``, ``cozoo.figures``): matplotlib
only, no other part of cozoo, so any layer's command may draw with them.

    timeline   class scores over time, with optional ground-truth segments
    saving     save_figure: lay out, write (folders made) and close a figure
"""

from .saving import save_figure
from .timeline import Segment, plot_timeline, top_classes

__all__ = ["Segment", "plot_timeline", "save_figure", "top_classes"]
