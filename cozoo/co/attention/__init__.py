"""Continual multi-head attention (Hedegaard et al., "Continual Transformers: Redundancy-Free
Attention for Online Inference", arXiv 2201.06268).

Two drop-in subclasses of ``torch.nn.MultiheadAttention``: same parameters, same ``state_dict``
keys, and ``forward`` *is* torch's. They add the step modes, which attend over a sliding window
of the last ``L = sequence_len`` tokens of a stream::

    step t        0   1  ...  L-2   L-1   L    L+1  ...
    window                         [0..L-1] [1..L] [2..L+1]
    output        .   .  ...   .    O     O     O          (. = None while the window fills)

    SingleOutputMultiheadAttention  one query (the newest token, or the token at window position
                                    ``query_index``) against the L keys: (N, E) per step
    RetroactiveMultiheadAttention   all L queries of the window, each row updated for the key
                                    that left and the key that entered: (L, N, E) per step

Every step output equals ``torch.nn.MultiheadAttention`` (same weights) applied to the window.

The package, one job per module: ``base`` (the shared core: layouts, inputs, projections,
step-mode checks, FLOPs), ``states`` (the immutable step states), ``single_output`` and
``retroactive`` (the two modules; ``retroactive`` also documents its exact, subtraction-free
update). The private functions ``_scaled_dot_product_attention_default_state`` and
``_scaled_dot_product_attention_step`` (``multihead_attention.retroactive_mha``) keep the
reference library's state layout and plain paper update, for compatibility.
"""

from .base import StepInput as StepInput
from .retroactive import RetroactiveMultiheadAttention
from .single_output import SingleOutputMultiheadAttention
from .states import RetroactiveAttentionState, SingleOutputAttentionState

__all__ = [
    "RetroactiveAttentionState",
    "RetroactiveMultiheadAttention",
    "SingleOutputAttentionState",
    "SingleOutputMultiheadAttention",
]
