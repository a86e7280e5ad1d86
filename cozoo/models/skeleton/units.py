"""The spatial units of the skeleton networks: graph convolution (ST-GCN), adaptive graph
convolution (AGCN) and spatial self-attention (S-TR).

A unit maps ``(N', C_in, T, V)`` to ``(N', C_out, T, V)`` (``N' = N·M``: every person is a batch
item) and works on each frame on its own, so it is a ``co`` stateless module: ``forward`` takes a
clip, a step takes a frame ``(N', C_in, V)``. The one exception is the clip form of the original
AGCN unit, whose attention spans all frames of its input (``attention="clip"``, see
``AdaptiveGraphUnit``).

Parameter names are those of the published checkpoints of Hedegaard et al., "Continual
Spatio-Temporal Graph Convolutional Networks" (Pattern Recognition 140, 2023): ``A``,
``graph_attn``, ``g_conv.{0,1,2}``, ``a_conv``/``b_conv``, ``gcn_residual.{0,1}``, ``bn``;
attention: ``data_bn``, ``attention_conv.qkv_conv``, ``attention_conv.attn_out``, ``bn``, ``A``.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from cozoo.co.child_steps import has_forward_hooks
from cozoo.co.module import Stateless

from .folded import fold, folded_graph_frame

__all__ = [
    "ADAPTIVE_UNITS",
    "AdaptiveGraphUnit",
    "GraphUnit",
    "SpatialAttentionUnit",
    "init_branch_conv",
]

SUBSETS = 3

#: ``attention`` of ``AdaptiveGraphUnit``: ``"clip"`` (2s-AGCN: one attention map over all the
#: frames of the input), ``"corrected"`` (the same map per frame), ``"published"`` (the per-frame
#: unit of the published AGCN* checkpoints, which mixes no joints; see the class docstring).
ADAPTIVE_UNITS = ("clip", "corrected", "published")


def init_branch_conv(conv: nn.Conv2d, branches: int) -> None:
    """2s-AGCN's init of a graph-branch 1x1 conv: N(0, sqrt(2 / (C_out·C_in·branches))), bias 0."""
    out_channels, in_channels = conv.weight.shape[:2]
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (out_channels * in_channels * branches)))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _adjacency_tensor(adjacency: np.ndarray) -> Tensor:
    return torch.tensor(np.asarray(adjacency), dtype=torch.float32)


def _down(in_channels: int, out_channels: int) -> Optional[nn.Sequential]:
    """The unit's own shortcut: None (identity) or 1x1 conv + BN when the width changes."""
    if in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))


class _FramewiseUnit(Stateless):
    """A unit that works frame by frame: a step ``(N', C, V)`` is ``forward`` on a 1-frame clip."""

    def _frame(self, x: Tensor) -> Tensor:
        return self.forward(x.unsqueeze(2)).squeeze(2)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[3] != self.num_joints:
            raise ValueError(
                f"{type(self).__name__}: expected (N, {self.in_channels}, T, "
                f"{self.num_joints}) (N: batch x persons), got {tuple(x.shape)}"
            )


class GraphUnit(_FramewiseUnit):
    """Graph convolution with 3 subsets (2s-AGCN's unit, ST-GCN and S-TR layers 1-3).

    ``y = ReLU(BN(sum_i g_conv_i(x ·_V (A_i ⊙ B_i))) + down(x))``, where ``A`` is the fixed
    graph (``graph.adjacency``), ``B = graph_attn`` a learnt edge importance (init 1) and
    ``x ·_V M`` the product over the joint axis, ``out[..., w] = sum_v x[..., v] M[v, w]``.
    ``(N', C_in, T, V)`` -> ``(N', C_out, T, V)``.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_joints = adjacency.shape[-1]
        # The fixed graph: a buffer (the checkpoints store it as ``A``; not a parameter, so
        # that parameter counts are the published ones).
        self.register_buffer("A", _adjacency_tensor(adjacency))
        self.graph_attn = nn.Parameter(torch.ones(self.A.shape))
        self.g_conv = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(3))
        self.bn = nn.BatchNorm2d(out_channels)
        self.gcn_residual = _down(in_channels, out_channels)
        self.relu = nn.ReLU()
        # the folded inference step (``fold_batch_norm_``): not saved, None until folded
        for name in ("folded_weight", "folded_edges", "folded_bias"):
            self.register_buffer(name, None, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """2s-AGCN's init: branch convs scaled by 3 branches, the BN after the sum at 1e-6."""
        for conv in self.g_conv:
            init_branch_conv(conv, SUBSETS)
        nn.init.constant_(self.bn.weight, 1e-6)
        nn.init.zeros_(self.bn.bias)

    def edges(self) -> Tensor:
        """The effective adjacency ``(3, V, V)``: ``A ⊙ graph_attn``."""
        return self.A * self.graph_attn

    def _aggregate(self, x: Tensor, edges: Tensor) -> Tensor:
        """``sum_i g_conv_i(x ·_V edges[i])``: ``(N', C_in, T, V)`` -> ``(N', C_out, T, V)``."""
        out = self.g_conv[0](torch.matmul(x, edges[0]))
        for i in range(1, SUBSETS):
            out = out + self.g_conv[i](torch.matmul(x, edges[i]))
        return out

    def _finish(self, z: Tensor, x: Tensor) -> Tensor:
        shortcut = x if self.gcn_residual is None else self.gcn_residual(x)
        return self.relu(self.bn(z) + shortcut)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self._finish(self._aggregate(x, self.edges()), x)

    def fold_batch_norm_(self) -> None:
        """Precompute the folded inference step (``folded.py``) from the weights as they are now
        (eval mode); ``co.fuse_batch_norm`` calls it when it folds a network for deployment.
        Later edits of the weights are not seen by the folded steps (``forward`` and training
        keep using the weights)."""
        with torch.no_grad():
            weights, edges, bias = fold(self)
        self.folded_weight, self.folded_edges, self.folded_bias = weights, edges, bias

    def _frame(self, x: Tensor) -> Tensor:
        # Folded units step in the two-matmul form, except for training, gradients, export
        # tracing and hooks on the unit's layers (FLOPs counting).
        if (
            self.folded_weight is None
            or self.training
            or torch.is_grad_enabled()
            or torch.jit.is_tracing()
            or torch.compiler.is_compiling()
            or x.dim() != 3
            or has_forward_hooks(self.g_conv[0])
        ):
            return super()._frame(x)
        self._check_input(x.unsqueeze(2))
        folded = (self.folded_weight, self.folded_edges, self.folded_bias)
        return folded_graph_frame(self, x, folded)


class AdaptiveGraphUnit(GraphUnit):
    """Adaptive graph convolution (2s-AGCN): the graph plus a data-dependent attention map.

    Per subset ``i``: embeddings ``a_i = a_conv_i(x)``, ``b_i = b_conv_i(x)`` of ``C_out / 4``
    channels; the effective adjacency is ``A + graph_attn`` (added, not multiplied). What
    ``attention`` does with them (``(N', C_in, T, V)`` -> ``(N', C_out, T, V)`` in every case):

    - ``"clip"`` (the original AGCN): ``S_i = softmax_v(a_i^T b_i / (C_e·T))`` over the joints
      of the *first* axis, with the inner product over channels *and all T frames*, then
      ``x ·_V (S_i + A_eff_i)``. Not frame-wise: a step sees one frame, a clip all of them, so
      the continual CoA-GCN built on it is not exact (its steps use one frame at a time).
    - ``"corrected"``: the same map computed per frame (scale ``1 / C_e``), frame-wise.
    - ``"published"``: the unit behind the published AGCN*/CoA-GCN* checkpoints. Its contraction
      keeps the output joint ``v`` and sums the key joint ``w`` away::

          S_i[n, t, v, w] = softmax_w(sum_c a_i[n, c, t, v] b_i[n, c, t, w] / C_e)
          z_i = g_conv_i(x[n, c, t, v] * sum_w (S_i + A_eff_i)[v, w])

      Each softmax row sums to 1, so this is ``x * (1 + rowsum(A_eff_i))``: a fixed per-joint
      scale, no message passing, and ``a_conv``/``b_conv`` do not change the output (they are
      kept and computed, for the checkpoints' keys and the published parameter and MAC counts).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        adjacency: np.ndarray,
        attention: str = "clip",
    ):
        if attention not in ADAPTIVE_UNITS:
            raise ValueError(
                f"AdaptiveGraphUnit: attention must be one of {ADAPTIVE_UNITS}, got {attention!r}"
            )
        self.embed_channels = out_channels // 4
        super().__init__(in_channels, out_channels, adjacency)
        self.attention = attention
        self.a_conv = nn.ModuleList(
            nn.Conv2d(in_channels, self.embed_channels, 1) for _ in range(SUBSETS)
        )
        self.b_conv = nn.ModuleList(
            nn.Conv2d(in_channels, self.embed_channels, 1) for _ in range(SUBSETS)
        )

    def edges(self) -> Tensor:
        """The effective adjacency ``(3, V, V)``: ``A + graph_attn``."""
        return self.A + self.graph_attn

    # The attention map depends on the frame: no folded step.
    _frame = _FramewiseUnit._frame
    fold_batch_norm_ = None

    def _clip(self, x: Tensor) -> Tensor:
        # Steps over a chunk see one frame at a time, as single steps do.
        if self.attention != "clip":
            return self.forward(x)
        n, c, t, v = x.shape
        folded = x.permute(0, 2, 1, 3).reshape(n * t, c, 1, v)
        out = self.forward(folded)
        return out.reshape(n, t, -1, v).permute(0, 2, 1, 3)

    def _embeddings(self, i: int, x: Tensor) -> Tuple[Tensor, Tensor]:
        return self.a_conv[i](x), self.b_conv[i](x)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        edges = self.edges()
        n, c, t, v = x.shape
        out: Optional[Tensor] = None
        for i in range(SUBSETS):
            a, b = self._embeddings(i, x)  # (N', C_e, T, V)
            if self.attention == "clip":
                keys = a.permute(0, 3, 1, 2).reshape(n, v, -1)  # (N', V, C_e·T)
                queries = b.reshape(n, -1, v)  # (N', C_e·T, V)
                attention = torch.softmax(torch.matmul(keys, queries) / keys.shape[-1], dim=-2)
                mixed = torch.matmul(x.reshape(n, c * t, v), attention + edges[i])
                y = mixed.reshape(n, c, t, v)
            else:
                # (N', T, V, C_e) @ (N', T, C_e, V): one map per frame.
                logits = torch.matmul(a.permute(0, 2, 3, 1), b.permute(0, 2, 1, 3))
                logits = logits / self.embed_channels
                if self.attention == "corrected":
                    attention = torch.softmax(logits, dim=-2)
                    y = torch.matmul(x.permute(0, 2, 1, 3), attention + edges[i])  # (N',T,C,V)
                    y = y.permute(0, 2, 1, 3)
                else:
                    attention = torch.softmax(logits, dim=-1)
                    scale = (attention + edges[i]).sum(-1)  # (N', T, V)
                    y = x * scale.unsqueeze(1)
            z = self.g_conv[i](y)
            out = z if out is None else out + z
        return self._finish(out, x)


class SpatialAttentionUnit(_FramewiseUnit):
    """Spatial self-attention over the joints of each frame (ST-TR's "only attention" unit).

    ``x`` is normalised by ``data_bn`` (one channel per (C_in, joint)), then per frame: a 1x1
    conv gives ``q``, ``k`` (``d_k = C_out / 4``) and ``v`` (``d_v = C_out``) channels, split
    into 8 heads; ``softmax_keys(q·k / sqrt(d_k / 8))`` weighs ``v``; the heads are concatenated
    and mixed by ``attn_out`` (1x1). Then ``ReLU(BN(out + x))`` (``ReLU(BN(out))`` when the width
    changes). In training, drop-connect removes each key joint of each head with probability
    0.5 and renormalises the rows. ``A`` is a trainable parameter the unit never uses (the
    published checkpoints and parameter counts have it).
    ``(N', C_in, T, V)`` -> ``(N', C_out, T, V)``.
    """

    heads = 8
    drop_connect = 0.5

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_joints = v = adjacency.shape[-1]
        if out_channels % (4 * self.heads):
            raise ValueError(
                f"SpatialAttentionUnit: out_channels must be a multiple of {4 * self.heads} "
                f"({self.heads} heads of d_k = out_channels / 4), got {out_channels}"
            )
        self.key_channels, self.value_channels = out_channels // 4, out_channels
        self.A = nn.Parameter(_adjacency_tensor(adjacency))
        self.data_bn = nn.BatchNorm1d(in_channels * v)
        self.attention_conv = nn.Module()
        self.attention_conv.qkv_conv = nn.Conv2d(
            in_channels, 2 * self.key_channels + self.value_channels, 1
        )
        self.attention_conv.attn_out = nn.Conv2d(self.value_channels, self.value_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def _normalise(self, x: Tensor) -> Tensor:
        n, c, t, v = x.shape
        flat = x.permute(0, 1, 3, 2).reshape(n, c * v, t)
        return self.data_bn(flat).reshape(n, c, v, t).permute(0, 1, 3, 2)

    def _attend(self, frames: Tensor) -> Tensor:
        """``(F, C_in, V)`` frames -> ``(F, d_v, V)`` attention output (before ``attn_out``)."""
        f, _, v = frames.shape
        h, dk, dv = self.heads, self.key_channels, self.value_channels
        qkv = self.attention_conv.qkv_conv(frames.unsqueeze(-1)).squeeze(-1)
        q, k, val = torch.split(qkv, (dk, dk, dv), dim=1)
        q = q.reshape(f, h, dk // h, v) * (dk // h) ** -0.5
        k = k.reshape(f, h, dk // h, v)
        val = val.reshape(f, h, dv // h, v)
        weights = torch.softmax(torch.matmul(q.transpose(2, 3), k), dim=-1)  # (F, h, Vq, Vk)
        if self.training and self.drop_connect > 0:
            keep = torch.rand(f, h, 1, v, device=frames.device) >= self.drop_connect
            weights = weights * keep
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-8)
        out = torch.matmul(val, weights.transpose(2, 3))  # (F, h, dv/h, Vq)
        return out.reshape(f, dv, v)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        n, c, t, v = x.shape
        normalised = self._normalise(x)
        frames = normalised.permute(0, 2, 1, 3).reshape(n * t, c, v)
        attended = self.attention_conv.attn_out(self._attend(frames).unsqueeze(-1)).squeeze(-1)
        out = attended.reshape(n, t, self.out_channels, v).permute(0, 2, 1, 3)
        if self.in_channels == self.out_channels:
            out = out + x
        return self.relu(self.bn(out))
