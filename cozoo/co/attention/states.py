"""The step states of the continual attention modules: immutable named tuples of per-token
tensors (oldest first) that a step extends and drops from; nothing is rolled or written in place.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Tuple

from torch import Tensor

__all__ = ["RetroactiveAttentionState", "SingleOutputAttentionState"]


class SingleOutputAttentionState(NamedTuple):
    """State of a ``SingleOutputMultiheadAttention`` (immutable; ``h`` heads of ``d = E/h``)."""

    counter: Any  # valid steps consumed (saturated): int, per-stream tuple, or (N,) tensor
    shape: Tuple[int, ...]  # the query step shape (N, E) the state was built for
    keys: Tuple[Tensor, ...]  # the last L-1 keys, each (N, h, d), oldest first
    values: Tuple[Tensor, ...]  # the last L-1 values, each (N, h, d)
    queries: Tuple[Tensor, ...]  # scaled queries still waiting for their output (query_index)


class RetroactiveAttentionState(NamedTuple):
    """State of a ``RetroactiveMultiheadAttention`` (immutable; ``h`` heads of ``d = E/h``).

    The "rows" are the L-1 newest tokens, whose queries stay in the next window.
    """

    counter: Any
    shape: Tuple[int, ...]
    queries: Tuple[Tensor, ...]  # scaled queries of the rows, each (N, h, d), oldest first
    keys: Tuple[Tensor, ...]  # keys of the L-1 newest tokens, each (N, h, d)
    values: Tuple[Tensor, ...]  # values of the L-1 newest tokens, each (N, h, d)
    past: Tuple[Tensor, ...]  # per row: suffix table (N, h, L, d + 1) = [mean | lse] of suffixes
    future_mean: Tensor  # (N, h, L-1, d): softmax mean of the values after each row's token
    future_lse: Tensor  # (N, h, L-1): log-sum-exp of the scores after each row's token
