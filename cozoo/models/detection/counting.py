"""The published per-step MAC counts of CoOadTR, as closed forms of the architecture.

The paper's figures (CoOadTR-b1 9.599 / 10.648 M, b2 410.939 / 411.988 M MACs per step with
ActivityNet / Kinetics features) were counted with ptflops module hooks on one step at batch 1
after a warm-up, with the layer library of their time. That convention counts:

- every ``Linear`` as ``inputs x out_features + out_features`` (the bias term counted even where
  the layer has none), with the time axis of a channel-first clip read as the feature axis
  (so a layer run in clip mode on ``(1, E, 1)`` counts ``E + 1``);
- attention by the layer's own formula, multiplications only, per head of width ``d`` over
  ``T`` tokens: ``2 T d + 2 d`` for one query, ``7 T d + 2 T - 3 d`` for the retroactive
  update; the in-projection ``3 E^2`` per new token, the out-projection ``E (E + 1)`` per
  output token;
- GELU as 2 per element (a shared module hooked twice); LayerNorm and the positional
  encoding as 0.

and in CoOadTR-b2 the layer-1 out-projection and feed-forward on all ``T`` updated tokens and
layer 2 run in clip mode (q, k and v projected for all ``T`` tokens, one query kept).
``cozoo.co.flops.complexity`` counts what a cozoo step really multiplies; both are reported by
``python -m cozoo.benchmark flops 'pattern=cooadtr_*'``.
"""

from __future__ import annotations

__all__ = ["published_step_macs"]


def published_step_macs(
    layers: int,
    feature_dim: int,
    num_classes: int = 22,
    window: int = 64,
    embed_dim: int = 1024,
    heads: int = 8,
    ff_dim: int = 1024,
) -> int:
    """MACs of one CoOadTR step under the published convention (see the module docstring)."""
    e, t, d = embed_dim, window, embed_dim // heads
    embedding = feature_dim * e + e
    head = e * num_classes + num_classes
    out_projection = e * (e + 1)
    feed_forward = (e * ff_dim + ff_dim) + (ff_dim * e + e)
    gelu = 2 * ff_dim
    single_query = heads * (2 * t * d + 2 * d)
    if layers == 1:
        attention = 3 * e * e + single_query + out_projection
        return embedding + attention + feed_forward + gelu + head
    if layers != 2:
        raise ValueError(f"published_step_macs: layers must be 1 or 2, got {layers!r}")
    retroactive = 3 * e * e + heads * (7 * t * d + 2 * t - 3 * d) + t * out_projection
    layer1_tail = t * (feed_forward + gelu)
    layer2_attention = t * 3 * e * e + single_query + out_projection
    layer2_tail = (e + 1) + (e + 1) + gelu  # its two Linears see (1, E, 1): E + 1 each
    return embedding + retroactive + layer1_tail + layer2_attention + layer2_tail + head
