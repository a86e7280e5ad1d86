"""The inference step of a graph unit with its BatchNorms folded in: two matmuls per frame.

``GraphUnit`` computes ``ReLU(BN(sum_i W_i (x A_i) + b_i) + down(x))`` with three 1x1 convs,
three joint products and up to two BatchNorms: many small kernels, which dominate a step of
the ~10 M-MAC blocks of CoST-GCN* at batch 1. A 1x1 conv mixes channels and ``A_i`` mixes
joints, so they commute: ``sum_i W_i x A_i = [W_0 x | W_1 x | W_2 x] [A_0; A_1; A_2]``. With
the BatchNorms' eval-mode scale folded into the weights, a frame costs one matmul for every
channel mix (the unit's shortcut conv stacked under ``W_0..W_2``) and one over the joints::

    u = [s·W_0; s·W_1; s·W_2; s_d·W_d] x          (N', 4·C_out, V)
    y = ReLU([u_0 | u_1 | u_2] [A_0; A_1; A_2] + u_d + bias)

The folded tensors are cached on the unit and rebuilt when any source tensor changes (its
version counter, storage, dtype or device), so a weight update or ``load_state_dict`` is seen
at the next step (a unit built under ``torch.inference_mode`` has no version counters: it folds
at every step). Results equal the unfolded unit up to float rounding.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ["folded_graph_frame"]

Folded = Tuple[Tensor, Tensor, Tensor]


def _norm_scale_shift(bn: nn.BatchNorm2d) -> Tuple[Tensor, Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _norm_sources(bn: nn.BatchNorm2d) -> List[Tensor]:
    return [bn.weight, bn.bias, bn.running_mean, bn.running_var]


def _down(unit: nn.Module) -> Tuple[Optional[nn.Conv2d], Optional[nn.BatchNorm2d]]:
    """The unit's shortcut conv and its BN (None: identity; ``co.fuse_batch_norm`` may have
    folded the BN into the conv already)."""
    if unit.gcn_residual is None:
        return None, None
    conv = next(m for m in unit.gcn_residual if isinstance(m, nn.Conv2d))
    bn = next((m for m in unit.gcn_residual if isinstance(m, nn.BatchNorm2d)), None)
    return conv, bn


def _sources(unit: nn.Module) -> List[Tensor]:
    """Every tensor the folded form is computed from (attribute reads: this runs per step)."""
    tensors = [unit.A, unit.graph_attn, *_norm_sources(unit.bn)]
    for conv in unit.g_conv:
        tensors += [conv.weight, conv.bias]
    conv, bn = _down(unit)
    if conv is not None:
        tensors += [conv.weight, conv.bias, *(_norm_sources(bn) if bn is not None else ())]
    return [t for t in tensors if t is not None]


def _fold(unit: nn.Module) -> Folded:
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


def _cached(unit: nn.Module) -> Folded:
    sources = _sources(unit)
    if any(t.is_inference() for t in sources):  # no version counter: fold every time
        with torch.no_grad():
            return _fold(unit)
    key = tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in sources)
    cached = unit.__dict__.get("_folded_step")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, _fold(unit))
        unit.__dict__["_folded_step"] = cached
    return cached[1]


def folded_graph_frame(unit: nn.Module, x: Tensor) -> Tensor:
    """``unit`` (a ``GraphUnit`` in eval mode) on one frame ``(N', C_in, V)`` ->
    ``(N', C_out, V)``."""
    weights, edges, bias = _cached(unit)
    n, _, v = x.shape
    out = unit.out_channels
    mixed = torch.matmul(weights, x)  # (N', 3·C' [+ C'], V)
    branches = mixed[:, : 3 * out].reshape(n, 3, out, v).transpose(1, 2).reshape(n, out, 3 * v)
    y = torch.matmul(branches, edges).add_(bias)
    y = y.add_(x if unit.gcn_residual is None else mixed[:, 3 * out :])
    return y.relu_()
