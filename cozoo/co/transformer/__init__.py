"""Continual transformer encoders (Hedegaard et al., "Continual Transformers", arXiv 2201.06268).

Layers use the continual layout: clips ``(N, E, T)``, steps ``(N, E)``. Their parameters and
``state_dict`` keys are exactly those of ``torch.nn.TransformerEncoderLayer`` (``self_attn.*``,
``linear1``, ``linear2``, ``norm1``, ``norm2``; ``activation.*`` for an activation module), and a
``TransformerEncoder``'s are those of ``torch.nn.TransformerEncoder`` (``layers.<i>.*``,
``norm.*``), so weights load either way. ``forward`` is torch's computation on the whole clip;
post-norm (default) and pre-norm (``norm_first=True``), any activation (``"relu"``, ``"gelu"``,
a function or a module), biases or none.

Layers
------
``SingleOutputTransformerEncoderLayer``  step: the layer's output for one token (the newest, or
    window position ``query_index``) over the last L tokens -> ``(N, E)``.
``RetroactiveTransformerEncoderLayer``   step: the layer's outputs for all L tokens of the
    window, each updated retroactively -> ``(N, E, L)``.
``RegularTransformerEncoderLayer``       stateless; in the step modes it maps a *window*
    ``(N, E, L)`` to the torch layer's output on it (a layer after a retroactive one).

Deep encoders: exact for any depth
----------------------------------
After a retroactive layer every token of the window changes at every step, so later layers
cannot reuse earlier work: they recompute on the window the retroactive layer returns::

    token x_t (N, E)
      -> layer 1    RetroactiveTransformerEncoderLayer        window (N, E, L): layer 1 on the
                                                              last L tokens, all L outputs
      -> layer 2..n-1  RegularTransformerEncoderLayer         window -> window (full attention)
      -> layer n    SingleOutputTransformerEncoderLayer       window -> (N, E): the last token
                    (window_input=True)                       only (one query, L keys)

so each step equals ``torch.nn.TransformerEncoder`` applied to the last L tokens, read at the
newest token, for every depth. One layer is a single-output layer on the token stream.
(``continual-inference`` 1.2.4 could not build 3+ layers, and its 2-layer encoder drifted from
torch's from step 2L-2 on.)

The package, one job per module: ``base`` (what every layer shares: torch's layer math on
channel-last tensors, the checks, the window stepping, the layer state), ``layers`` (the three
layers) and ``encoder`` (``MhaType``, the layer factory and the stacked ``TransformerEncoder``).
"""

from .base import Activation as Activation
from .base import LayerState as LayerState
from .encoder import MhaType, TransformerEncoder, TransformerEncoderLayerFactory
from .layers import (
    RegularTransformerEncoderLayer,
    RetroactiveTransformerEncoderLayer,
    SingleOutputTransformerEncoderLayer,
)

__all__ = [
    "MhaType",
    "RegularTransformerEncoderLayer",
    "RetroactiveTransformerEncoderLayer",
    "SingleOutputTransformerEncoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayerFactory",
]
