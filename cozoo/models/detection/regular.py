"""OadTR (Wang et al., "OadTR: Online Action Detection with Transformers", ICCV 2021) and its
decoder-free baselines OadTR-b1/b2 (Hedegaard et al., ICLR 2023), as regular ``torch.nn``
networks on one window of step features.

Clip ``(N, D, T=64)`` -> logits ``(N, K)`` of the window's last step::

    features -> Linear D->E [-> append a class token (OadTR)] -> + learned absolute PE
      -> Dropout -> L pre-norm encoder layers -> LayerNorm -> encoder memory M
    OadTR:    8 learned queries -> 5 post-norm decoder layers (causal self-attention,
              cross-attention to M) -> LayerNorm -> Dropout -> D (N, 8, E)
              logits = Linear 2E->K (class-token output, mean of D); future = Linear E->K (D)
    b1 / b2:  logits = Linear E->K (the last token of M)

Encoder attention: one bias-free qkv projection, 8 heads, an output projection with bias.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["OadTRNetwork", "PreNormEncoderLayer", "PostNormDecoderLayer"]


def _feed_forward(embed_dim: int, ff_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(embed_dim, ff_dim),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(ff_dim, embed_dim),
        nn.Dropout(dropout),
    )


class PreNormEncoderLayer(nn.Module):
    """``x + Drop(Attn(LN x))``, then ``x + FF(LN x)``; tokens ``(N, T, E)``."""

    def __init__(self, embed_dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm1 = nn.LayerNorm(embed_dim)
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=False)
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.proj_drop = nn.Dropout(dropout)
        self.drop = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.ff = _feed_forward(embed_dim, ff_dim, dropout)

    def attention(self, x: Tensor) -> Tensor:
        n, t, e = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, e // self.heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (N, H, T, E/H)
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(n, t, e)))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.ff(self.norm2(x))


class PostNormDecoderLayer(nn.Module):
    """DETR-style decoder layer (post-norm): causal self-attention over the queries,
    cross-attention to the encoder memory, feed-forward; queries ``(N, Q, E)``."""

    def __init__(self, embed_dim: int, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dim, heads, dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(embed_dim, heads, dropout, batch_first=True)
        self.ff = _feed_forward(embed_dim, ff_dim, dropout)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)
        self.norm3 = nn.LayerNorm(embed_dim)
        self.drop1 = nn.Dropout(dropout)
        self.drop2 = nn.Dropout(dropout)

    def forward(self, queries: Tensor, memory: Tensor) -> Tensor:
        q = queries.shape[1]
        causal = torch.ones(q, q, dtype=torch.bool, device=queries.device).triu(1)
        attended = self.self_attn(queries, queries, queries, attn_mask=causal, need_weights=False)
        x = self.norm1(queries + self.drop1(attended[0]))
        crossed = self.cross_attn(x, memory, memory, need_weights=False)[0]
        x = self.norm2(x + self.drop2(crossed))
        return self.norm3(x + self.ff(x))


class OadTRNetwork(nn.Module):
    """The regular network on one window (see the module docstring).

    Args:
        feature_dim: ``D`` (4096 Kinetics TSN rgb+flow, 3072 ActivityNet TSN, +4096 audio).
        num_classes: ``K`` (22 on THUMOS14).
        window: ``T`` (64).
        encoder_layers: 3 (OadTR), 1 / 2 (OadTR-b1 / -b2).
        decoder_layers: 5 (OadTR, with a class token) or 0 (no decoder, no class token).
        embed_dim, heads, ff_dim, dropout: 1024, 8, 1024, 0.1.
        decoder_heads, queries: 4 and 8 (OadTR's anticipation decoder).
    """

    def __init__(
        self,
        feature_dim: int = 4096,
        num_classes: int = 22,
        window: int = 64,
        encoder_layers: int = 3,
        decoder_layers: int = 5,
        embed_dim: int = 1024,
        heads: int = 8,
        ff_dim: int = 1024,
        dropout: float = 0.1,
        decoder_heads: int = 4,
        queries: int = 8,
    ):
        super().__init__()
        self.feature_dim, self.window, self.num_classes = feature_dim, window, num_classes
        self.embedding = nn.Linear(feature_dim, embed_dim)
        decoder = decoder_layers > 0
        self.class_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if decoder else None
        self.position = nn.Embedding(window + 1, embed_dim)  # +1: the class token's (OadTR)
        self.position_drop = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(
            PreNormEncoderLayer(embed_dim, heads, ff_dim, dropout) for _ in range(encoder_layers)
        )
        self.encoder_norm = nn.LayerNorm(embed_dim)
        if decoder:
            self.queries = nn.Parameter(torch.zeros(1, queries, embed_dim))
            self.decoder = nn.ModuleList(
                PostNormDecoderLayer(embed_dim, decoder_heads, ff_dim, dropout)
                for _ in range(decoder_layers)
            )
            self.decoder_norm = nn.LayerNorm(embed_dim)
            self.decoder_drop = nn.Dropout(dropout)
            self.head = nn.Linear(2 * embed_dim, num_classes)
            self.future_head = nn.Linear(embed_dim, num_classes)
        else:
            self.head = nn.Linear(embed_dim, num_classes)

    @property
    def has_decoder(self) -> bool:
        return self.class_token is not None

    def _check(self, x: Tensor) -> None:
        if (
            not isinstance(x, Tensor)
            or x.dim() != 3
            or tuple(x.shape[1:])
            != (
                self.feature_dim,
                self.window,
            )
        ):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__}: expected a window (N, D={self.feature_dim}, "
                f"T={self.window}), got {got}"
            )

    def forward_with_future(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """``(N, D, T)`` -> logits ``(N, K)`` and the anticipated logits of the next
        ``queries`` steps ``(N, Q, K)`` (None without a decoder)."""
        self._check(x)
        tokens = self.embedding(x.transpose(1, 2))  # (N, T, E)
        if self.has_decoder:
            tokens = torch.cat([tokens, self.class_token.expand(x.shape[0], -1, -1)], 1)
        tokens = self.position_drop(tokens + self.position.weight[: tokens.shape[1]])
        for layer in self.encoder:
            tokens = layer(tokens)
        memory = self.encoder_norm(tokens)
        if not self.has_decoder:
            return self.head(memory[:, -1]), None
        queries = self.queries.expand(x.shape[0], -1, -1)
        for layer in self.decoder:
            queries = layer(queries, memory)
        decoded = self.decoder_drop(self.decoder_norm(queries))
        summary = torch.cat([memory[:, -1], decoded.mean(1)], 1)
        return self.head(summary), self.future_head(decoded)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, D, T)`` -> logits ``(N, K)``."""
        return self.forward_with_future(x)[0]
