"""LightningModules of the cozoo research framework.

- ``ContinualTask`` (:mod:`._base`): what every task shares: the network from a nested
  ``model`` config, optimiser and schedule from config, RNG states in checkpoints, the clip and
  continual evaluation modes and their throughput.
- ``ClassificationTask`` (:mod:`.classification`): trains a continual classifier on clips and
  evaluates it in clip mode and step by step, logging top-1/top-5 of both.
- ``OnlineDetectionTask`` (:mod:`.detection`): trains an online action detector on windows
  and evaluates it on windows and by streaming every video step by step (per-frame mAP).
- :mod:`.results`: the results table an evaluation prints, measured beside published.
"""

from ._base import INITS, MODES, ContinualTask, init_from_scratch
from ._rng import get_rng_states, set_rng_states
from .classification import ClassificationTask, VideoClassifier, upgrade_hparams
from .detection import OnlineDetectionTask
from .results import ResultRow, format_table

__all__ = [
    "INITS",
    "MODES",
    "ClassificationTask",
    "OnlineDetectionTask",
    "ContinualTask",
    "ResultRow",
    "VideoClassifier",
    "format_table",
    "get_rng_states",
    "init_from_scratch",
    "set_rng_states",
    "upgrade_hparams",
]
