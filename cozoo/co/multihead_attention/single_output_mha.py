"""``SingleOutputMultiheadAttention`` and the reference library's pure single-output step.

The private functions keep ``continual-inference``'s state layout (``B = batch * heads``,
``d = embed_dim // heads``, ``L = sequence_len``, ``n_q`` = queries waiting for their output,
0 for ``query_index=-1``)::

    Q_mem (B, n_q, d)   pre-scaled queries      K_T_mem (B, d, L)   keys     V_mem (B, L, d)

The step builds new tensors (no ``torch.roll``, nothing in place) and uses ``softmax``, which is
stable. The module ``SingleOutputMultiheadAttention`` keeps its own state
(``cozoo.co.attention.single_output``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from ..attention.single_output import SingleOutputMultiheadAttention
from ..attention.states import SingleOutputAttentionState

__all__ = ["SingleOutputAttentionState", "SingleOutputMultiheadAttention"]

ReferenceState = Tuple[Tensor, Tensor, Tensor]


def _scaled_dot_product_attention_default_state(
    batch_size: int,
    sequence_len: int,
    embed_dim: int,
    num_heads: int,
    query_index: int = -1,
    init_fn: Callable[..., Tensor] = torch.zeros,
    dtype: Optional[torch.dtype] = None,
    device: Optional[torch.device] = None,
) -> ReferenceState:
    """``(Q_mem, K_T_mem, V_mem)`` of a fresh stream, made by ``init_fn``."""
    d = embed_dim // num_heads
    b = batch_size * num_heads
    n = sequence_len
    n_q = n - query_index - 1 if query_index >= 0 else -query_index - 1

    def make(*shape: int) -> Tensor:
        return init_fn(shape, dtype=dtype, device=device)

    return make(b, n_q, d), make(b, d, n), make(b, n, d)


def _scaled_dot_product_attention_step(
    prev_state: ReferenceState,
    q_step: Tensor,
    k_step: Tensor,
    v_step: Tensor,
    attn_mask: Optional[Tensor] = None,
    dropout_p: float = 0.0,
) -> Tuple[Tensor, ReferenceState]:
    """One single-output step: ``(B, d)`` inputs -> ``(output (B, 1, d), new_state)``.

    ``attn_mask`` and ``dropout_p`` exist for signature compatibility; anything but
    ``None``/``0.0`` raises a ValueError (the reference silently ignored them).
    """
    if attn_mask is not None:
        raise ValueError("_scaled_dot_product_attention_step: attn_mask is not supported")
    if dropout_p:
        raise ValueError("_scaled_dot_product_attention_step: dropout_p must be 0.0")
    q_mem, k_t_mem, v_mem = prev_state
    q = q_step / math.sqrt(q_step.shape[1])
    q_sel = q_mem[:, :1] if q_mem.shape[1] > 0 else q.unsqueeze(1)
    k_t_new = torch.cat([k_t_mem[:, :, 1:], k_step.unsqueeze(2)], 2)
    v_new = torch.cat([v_mem[:, 1:], v_step.unsqueeze(1)], 1)
    out = torch.bmm(torch.softmax(torch.bmm(q_sel, k_t_new), -1), v_new)
    q_new = torch.cat([q_mem[:, 1:], q.unsqueeze(1)], 1) if q_mem.shape[1] > 0 else q_mem
    return out, (q_new, k_t_new, v_new)
