"""The regular baselines of the online-detection family, registered for comparison and for the
benchmark: ``oadtr`` (OadTR: 3 encoder layers, class token, 5-layer anticipation decoder),
``oadtr_b1`` and ``oadtr_b2`` (1 / 2 encoder layers, no decoder, no class token).

Each is the regular network (``regular.OadTRNetwork``) served on a stream the only way a
regular network can be: a ``SlidingWindowNetwork`` that recomputes the last 64 steps for every
prediction. Clip ``(N, D, T >= 64)`` -> ``(N, K, T - 63)``; step ``(N, D)`` -> ``(N, K)``.
"""

from __future__ import annotations

from typing import Any

from .._registry import register_model
from .._weights import WeightsEnum, build_model
from ._published import weights_members
from .regular import OadTRNetwork
from .windowed import SlidingWindowNetwork

__all__ = ["OadTR_B1_Weights", "OadTR_B2_Weights", "OadTR_Weights", "oadtr", "oadtr_b1", "oadtr_b2"]

OadTR_Weights = WeightsEnum("OadTR_Weights", weights_members("oadtr"))
OadTR_Weights.__doc__ = "OadTR on THUMOS14 (meta only: no checkpoint in this zoo's formats)."
OadTR_B1_Weights = WeightsEnum("OadTR_B1_Weights", weights_members("oadtr_b1"))
OadTR_B1_Weights.__doc__ = "OadTR-b1 on THUMOS14 (meta only)."
OadTR_B2_Weights = WeightsEnum("OadTR_B2_Weights", weights_members("oadtr_b2"))
OadTR_B2_Weights.__doc__ = "OadTR-b2 on THUMOS14 (meta only)."


def sliding_oadtr(*, window: int = 64, **kwargs: Any) -> SlidingWindowNetwork:
    """``SlidingWindowNetwork(OadTRNetwork(window=window, **kwargs), window)``."""
    return SlidingWindowNetwork(OadTRNetwork(window=window, **kwargs), window)


def _oadtr(**kwargs: Any) -> SlidingWindowNetwork:
    return sliding_oadtr(encoder_layers=3, decoder_layers=5, **kwargs)


def _b1(**kwargs: Any) -> SlidingWindowNetwork:
    return sliding_oadtr(encoder_layers=1, decoder_layers=0, **kwargs)


def _b2(**kwargs: Any) -> SlidingWindowNetwork:
    return sliding_oadtr(encoder_layers=2, decoder_layers=0, **kwargs)


@register_model(weights=OadTR_Weights, task="detection")
def oadtr(*, weights: Any = None, **kwargs: Any) -> SlidingWindowNetwork:
    """OadTR (Wang et al., ICCV 2021); ``kwargs``: ``OadTRNetwork``'s."""
    return build_model(_oadtr, OadTR_Weights, weights, **kwargs)


@register_model(weights=OadTR_B1_Weights, task="detection")
def oadtr_b1(*, weights: Any = None, **kwargs: Any) -> SlidingWindowNetwork:
    """OadTR-b1: one pre-norm encoder layer, no decoder, no class token."""
    return build_model(_b1, OadTR_B1_Weights, weights, **kwargs)


@register_model(weights=OadTR_B2_Weights, task="detection")
def oadtr_b2(*, weights: Any = None, **kwargs: Any) -> SlidingWindowNetwork:
    """OadTR-b2: two pre-norm encoder layers, no decoder, no class token."""
    return build_model(_b2, OadTR_B2_Weights, weights, **kwargs)
