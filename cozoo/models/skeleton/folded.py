"""The inference step of a graph unit with its BatchNorms folded in: two matmuls per frame.

``GraphUnit`` computes ``ReLU(BN(sum_i W_i (x A_i) + b_i) + down(x))`` with three 1x1 convs,
three joint products and up to two BatchNorms: many small kernels, which dominate a step of
the ~10 M-MAC blocks of CoST-GCN* at batch 1. A 1x1 conv mixes channels and ``A_i`` mixes
joints, so they commute: ``sum_i W_i x A_i = [W_0 x | W_1 x | W_2 x] [A_0; A_1; A_2]``. With
the BatchNorms' eval-mode scale folded into the weights, a frame costs one matmul for every
channel mix (the unit's shortcut conv stacked under ``W_0..W_2``) and one over the joints::

    u = [s·W_0; s·W_1; s·W_2; s_d·W_d] x          (N', 4·C_out, V)
    y = ReLU([u_0 | u_1 | u_2] [A_0; A_1; A_2] + u_d + bias)

Folding is a deployment step, like ``co.fuse_batch_norm`` (which calls it): the folded
tensors are computed once from the weights as they are, and later edits of the weights are not
seen by the folded step (a cache keyed on the weights' version counters would miss edits made
through ``param.data``). Results equal the unfolded unit up to float rounding.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["fold", "folded_graph_frame"]

Folded = Tuple[Tensor, Tensor, Tensor]


def _norm_scale_shift(bn: nn.BatchNorm2d) -> Tuple[Tensor, Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _down(unit: nn.Module) -> Tuple[Optional[nn.Conv2d], Optional[nn.BatchNorm2d]]:
    """The unit's shortcut conv and its BN (None: identity; ``co.fuse_batch_norm`` may have
    folded the BN into the conv already)."""
    if unit.gcn_residual is None:
        return None, None
    conv = next(m for m in unit.gcn_residual if isinstance(m, nn.Conv2d))
    bn = next((m for m in unit.gcn_residual if isinstance(m, nn.BatchNorm2d)), None)
    return conv, bn


def fold(unit: nn.Module) -> Folded:
    """The folded tensors of ``unit`` in eval mode: stacked weights ``(3·C' [+ C'], C)``, the
    stacked graph ``(3V, V)`` and the bias ``(C', 1)``."""
    out = unit.out_channels
    scale, shift = _norm_scale_shift(unit.bn)
    weights = torch.stack([conv.weight[:, :, 0, 0] for conv in unit.g_conv])  # (3, C', C)
    rows = [(weights * scale[None, :, None]).reshape(-1, unit.in_channels)]
    bias = scale * sum(conv.bias for conv in unit.g_conv) + shift
    conv, bn = _down(unit)
    if conv is not None:
        down_bias = conv.bias if conv.bias is not None else torch.zeros_like(bias)
        down_scale, down_shift = (
            _norm_scale_shift(bn) if bn is not None else (torch.ones_like(bias), 0.0)
        )
        rows.append(conv.weight[:, :, 0, 0] * down_scale[:, None])
        bias = bias + down_scale * down_bias + down_shift
    edges = unit.edges().reshape(-1, unit.num_joints)  # (3V, V): [A_0; A_1; A_2]
    assert edges.shape[0] == 3 * unit.num_joints and rows[0].shape[0] == 3 * out
    return torch.cat(rows).contiguous(), edges.contiguous(), bias.reshape(out, 1).contiguous()


def folded_graph_frame(unit: nn.Module, x: Tensor, folded: Folded) -> Tensor:
    """``unit`` (a ``GraphUnit`` in eval mode) on one frame ``(N', C_in, V)`` ->
    ``(N', C_out, V)``, with the ``fold(unit)`` tensors ``folded``."""
    weights, edges, bias = folded
    n, _, v = x.shape
    out = unit.out_channels
    mixed = torch.matmul(weights, x)  # (N', 3·C' [+ C'], V)
    branches = mixed[:, : 3 * out].reshape(n, 3, out, v).transpose(1, 2).reshape(n, out, 3 * v)
    y = torch.matmul(branches, edges).add_(bias)
    y = y.add_(x if unit.gcn_residual is None else mixed[:, 3 * out :])
    return y.relu_()
