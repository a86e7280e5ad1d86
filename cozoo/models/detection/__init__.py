"""Online action detection: CoOadTR-b1/b2 (continual) and OadTR, OadTR-b1/b2 (regular
baselines) on per-step video features (THUMOS14)."""

from .cooadtr import CoOadTR, CoOadTR_B1_Weights, CoOadTR_B2_Weights, cooadtr_b1, cooadtr_b2
from .oadtr import OadTR_B1_Weights, OadTR_B2_Weights, OadTR_Weights, oadtr, oadtr_b1, oadtr_b2
from .regular import OadTRNetwork
from .windowed import SlidingWindowNetwork

__all__ = [
    "CoOadTR",
    "CoOadTR_B1_Weights",
    "CoOadTR_B2_Weights",
    "OadTRNetwork",
    "OadTR_B1_Weights",
    "OadTR_B2_Weights",
    "OadTR_Weights",
    "SlidingWindowNetwork",
    "cooadtr_b1",
    "cooadtr_b2",
    "oadtr",
    "oadtr_b1",
    "oadtr_b2",
]
