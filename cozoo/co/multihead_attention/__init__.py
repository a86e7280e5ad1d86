"""Continual multi-head attention, at the module paths of ``continual-inference``.

The implementation lives in the package ``cozoo.co.attention``; see its docstring.
"""

from ..attention import RetroactiveMultiheadAttention, SingleOutputMultiheadAttention

__all__ = ["RetroactiveMultiheadAttention", "SingleOutputMultiheadAttention"]
