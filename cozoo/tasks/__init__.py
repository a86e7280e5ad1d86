"""LightningModules of the cozoo research framework.

``VideoClassifier``: trains a ``cozoo.models`` video classifier on clips and evaluates it in
clip mode and in continual (frame-by-frame) mode, logging top-1/top-5 of both.
"""

from .classification import MODES, VideoClassifier

__all__ = ["MODES", "VideoClassifier"]
