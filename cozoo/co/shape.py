"""Continual ``Reshape``: reshape every step, keeping time at dim 2 in clips."""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from torch import Tensor

from .module import Stateless

__all__ = ["Reshape"]


class Reshape(Stateless):
    """Reshape each step to ``shape``, which **includes the batch dimension**.

    ``Reshape(-1, 12)``, ``Reshape((-1, 12))`` and ``Reshape([-1, 12])`` are the same module::

        step (B, C, *S)     -> step.reshape(shape)
        clip (B, C, T, *S)  -> every step reshaped, stacked on dim 2:
                               (shape[0], shape[1], T, *shape[2:])

    The clip path is one reshape over all steps (no per-step loop). With ``contiguous=True`` the
    output is made contiguous (a clip's reshaped output is otherwise a permuted view).
    """

    def __init__(self, *shape: Union[int, Sequence[int]], contiguous: bool = False):
        super().__init__()
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        if not shape or not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
            raise TypeError(f"Reshape: expected a shape of ints, got {shape!r}")
        if len(shape) < 2:
            raise ValueError(
                f"Reshape: the step shape {tuple(shape)} must keep at least two dims (B, C, ...) "
                "so that clips can keep time at dim 2"
            )
        if sum(s == -1 for s in shape) > 1 or any(s < -1 for s in shape):
            raise ValueError(f"Reshape: invalid shape {tuple(shape)} (at most one -1, sizes >= 0)")
        self.shape: Tuple[int, ...] = tuple(shape)
        self.contiguous = bool(contiguous)

    def extra_repr(self) -> str:
        return f"{self.shape}" + (", contiguous=True" if self.contiguous else "")

    def forward(self, input: Tensor) -> Tensor:
        """Clip ``(B, C, T, *S)`` -> ``(shape[0], shape[1], T, *shape[2:])``."""
        self._check_clip_dims(input)
        t = input.shape[2]
        out = input.movedim(2, 0).reshape((t,) + self.shape).movedim(0, 2)
        return out.contiguous() if self.contiguous else out

    def _frame(self, x: Tensor) -> Tensor:
        out = x.reshape(self.shape)
        return out.contiguous() if self.contiguous else out

    def _check_clip_dims(self, x: Tensor) -> None:
        if x.dim() < 3:
            raise ValueError(
                f"Reshape: expected a clip (B, C, T, ...), got shape {tuple(x.shape)}; "
                "use forward_step for a single step"
            )
