"""``RetroactiveMultiheadAttention`` and the reference library's pure retroactive attention step.

The two private functions keep ``continual-inference``'s state layout (``B = batch * heads``,
``d = embed_dim // heads``, ``L = sequence_len``)::

    d_mem   (B, L-1, 1)   row sums of exp(scores) of the window's newest L-1 query rows
    AV_mem  (B, L-1, d)   exp(scores) @ V of those rows (unnormalised)
    Q_mem   (B, L-1, d)   their queries, pre-scaled by 1/sqrt(d)
    K_T_mem (B, d, L)     the window's keys, transposed
    V_mem   (B, L, d)     the window's values

and the paper's update: subtract the leaving key's column, add the new key's column, compute the
new row, output ``AV / d``. It uses raw ``exp`` (no max shift), exactly like the reference, so it
overflows for large scores and cancels when a dominant key leaves the window; the module
``RetroactiveMultiheadAttention`` does not use it (see ``cozoo.co.attention.retroactive`` for
its exact, subtraction-free update). The step builds new tensors (no ``torch.roll``, nothing
in place).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
from torch import Tensor

from ..attention.retroactive import RetroactiveMultiheadAttention
from ..attention.states import RetroactiveAttentionState

__all__ = ["RetroactiveAttentionState", "RetroactiveMultiheadAttention"]

ReferenceState = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]


def _scaled_dot_product_attention_default_state(
    batch_size: int,
    sequence_len: int,
    embed_dim: int,
    num_heads: int,
    init_fn: Callable[..., Tensor] = torch.zeros,
    dtype: Optional[torch.dtype] = None,
    device: Optional[torch.device] = None,
) -> ReferenceState:
    """``(d_mem, AV_mem, Q_mem, K_T_mem, V_mem)`` of a fresh stream, made by ``init_fn``."""
    d = embed_dim // num_heads
    b = batch_size * num_heads
    n = sequence_len

    def make(*shape: int) -> Tensor:
        return init_fn(shape, dtype=dtype, device=device)

    return make(b, n - 1, 1), make(b, n - 1, d), make(b, n - 1, d), make(b, d, n), make(b, n, d)


def _scaled_dot_product_attention_step(
    prev_state: ReferenceState,
    q_step: Tensor,
    k_step: Tensor,
    v_step: Tensor,
    attn_mask: Optional[Tensor] = None,
    dropout_p: float = 0.0,
) -> Tuple[Tensor, ReferenceState]:
    """One retroactive step: ``q_step``, ``k_step``, ``v_step`` ``(B, d)`` ->
    ``(output (B, L, d), new_state)``; the output rows are the window's tokens, oldest first.

    ``attn_mask`` and ``dropout_p`` exist for signature compatibility; anything but
    ``None``/``0.0`` raises a ValueError (the reference silently ignored them).
    """
    if attn_mask is not None:
        raise ValueError("_scaled_dot_product_attention_step: attn_mask is not supported")
    if dropout_p:
        raise ValueError("_scaled_dot_product_attention_step: dropout_p must be 0.0")
    d_mem, av_mem, q_mem, k_t_mem, v_mem = prev_state
    q = q_step / math.sqrt(q_step.shape[1])
    # Columns of the key leaving the window and of the key entering it, for the kept rows.
    a_left = torch.exp(torch.bmm(q_mem, k_t_mem[:, :, :1]))  # (B, L-1, 1)
    a_right = torch.exp(torch.bmm(q_mem, k_step.unsqueeze(2)))
    k_t_new = torch.cat([k_t_mem[:, :, 1:], k_step.unsqueeze(2)], 2)
    v_new = torch.cat([v_mem[:, 1:], v_step.unsqueeze(1)], 1)
    # The new bottom row.
    a_bottom = torch.exp(torch.bmm(q.unsqueeze(1), k_t_new))  # (B, 1, L)
    d = torch.cat([d_mem - a_left + a_right, a_bottom.sum(2, keepdim=True)], 1)
    av_top = av_mem - a_left * v_mem[:, :1] + a_right * v_step.unsqueeze(1)
    av = torch.cat([av_top, torch.bmm(a_bottom, v_new)], 1)
    q_new = torch.cat([q_mem[:, 1:], q.unsqueeze(1)], 1)
    return av / d, (d[:, 1:], av[:, 1:], q_new, k_t_new, v_new)
