"""Continual ``Linear``: ``torch.nn.Linear`` applied along a chosen channel dimension."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checks import step_input_error
from .module import Stateless

__all__ = ["Linear"]


class Linear(Stateless, nn.Linear):
    """``nn.Linear`` over the dimension ``channel_dim``; stateless, the same op in every mode.

    ``channel_dim=-1`` (default, as ``nn.Linear``) projects the last dimension, e.g. a
    channel-last clip ``(B, T, C)``; use ``channel_dim=1`` for the ``(B, C, T, *S)`` layout of
    the other continual modules. A step ``(B, C)`` works with either, since its last dim is 1.

    Parameters and ``state_dict`` keys are ``nn.Linear``'s (``weight``, ``bias``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        channel_dim: int = -1,
    ):
        nn.Linear.__init__(self, in_features, out_features, bias, device, dtype)
        if not isinstance(channel_dim, int) or isinstance(channel_dim, bool):
            raise TypeError(f"Linear: channel_dim must be an int, got {channel_dim!r}")
        self.channel_dim = channel_dim

    @classmethod
    def build_from(cls, module: nn.Linear, channel_dim: int = -1, **kwargs) -> Linear:
        """A continual copy of ``module`` (same weights); ``kwargs`` override constructor args."""
        if not isinstance(module, nn.Linear):
            raise TypeError(f"Linear.build_from expects an nn.Linear, got {type(module).__name__}")
        args = dict(
            in_features=module.in_features,
            out_features=module.out_features,
            bias=module.bias is not None,
            device=module.weight.device,
            dtype=module.weight.dtype,
            channel_dim=channel_dim,
        )
        args.update(kwargs)
        linear = cls(**args)
        with torch.no_grad():
            linear.weight.copy_(module.weight)
            if module.bias is not None and linear.bias is not None:
                linear.bias.copy_(module.bias)
        return linear

    def forward(self, input: Tensor) -> Tensor:
        """``(..., in_features, ...)`` -> ``(..., out_features, ...)``, features at channel_dim."""
        dim = self.channel_dim
        if dim == -1 or dim == input.dim() - 1:
            return F.linear(input, self.weight, self.bias)
        return F.linear(input.movedim(dim, -1), self.weight, self.bias).movedim(-1, dim)

    def _frame(self, x: Tensor) -> Tensor:
        try:
            return self.forward(x)
        except (RuntimeError, IndexError) as failure:
            # torch refuses every step whose features do not fit (checking first would cost a
            # shape read per step): name the module and what it expected instead.
            dim = self.channel_dim
            dims = max(x.dim(), 2, dim + 1 if dim >= 0 else -dim)
            error = step_input_error(self, x, dims, self.in_features, channel_dim=dim)
            if error is None:
                raise
            raise error from failure

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, channel_dim={self.channel_dim}"
