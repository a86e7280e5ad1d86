"""The ends of every skeleton network: the input norm that makes persons batch rows, and the
mean over joints and persons that undoes it.

A clip ``(N, C, T, V, M)`` becomes ``(N·M, C, T, V)`` for the blocks (each person a batch row,
as 2s-AGCN does), and the blocks' ``(N·M, C', T', V)`` becomes ``(N, C', T')``. Both are
stateless continual modules (a step drops ``T``), used by the regular and the continual
networks alike; they also map per-stream validity flags between streams and person rows.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from cozoo.co.module import Stateless

__all__ = ["PersonJointMean", "SkeletonDataNorm"]


def _per_person(valid: Any, persons: int) -> Any:
    """Per-stream validity flags ``(N,)`` as flags of the ``N·M`` person rows."""
    if isinstance(valid, tuple):
        return tuple(flag for flag in valid for _ in range(persons))
    if isinstance(valid, Tensor) and valid.dim() == 1:
        return valid.repeat_interleave(persons)
    return valid


def _per_stream(valid: Any, persons: int) -> Any:
    """Flags of the ``N·M`` person rows (equal within a stream) as per-stream flags ``(N,)``."""
    if isinstance(valid, tuple) or (isinstance(valid, Tensor) and valid.dim() == 1):
        return valid[::persons]
    return valid


class SkeletonDataNorm(Stateless, nn.BatchNorm1d):
    """BatchNorm of every (person, joint, channel) of the input, then persons as batch items.

    Clip ``(N, C, T, V, M)`` -> ``(N·M, C, T, V)``; step ``(N, C, V, M)`` -> ``(N·M, C, V)``.
    Channel ``m·V·C + v·C + c`` of the BN is joint ``v``'s channel ``c`` of person ``m``.
    """

    def __init__(self, channels: int, joints: int, persons: int):
        nn.BatchNorm1d.__init__(self, persons * joints * channels)
        self.channels, self.joints, self.persons = channels, joints, persons

    def _check(self, x: Tensor, step: bool) -> None:
        """A clip ``(N, C, T, V, M)`` (step: ``(N, C, V, M)``) of this model's C, V and M."""
        if x.dim() == (4 if step else 5):
            if (x.shape[1], x.shape[-2], x.shape[-1]) == (self.channels, self.joints, self.persons):
                return
        c, v, m = self.channels, self.joints, self.persons
        layout, want = ("(N, C, V, M)", f"(N, {c}, {v}, {m})") if step else (
            "(N, C, T, V, M)", f"(N, {c}, T, {v}, {m})"
        )  # fmt: skip
        raise ValueError(
            f"{type(self).__name__}: expected a {layout} input {want}, got {tuple(x.shape)}"
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x, step=False)
        n, c, t, v, m = x.shape
        flat = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)
        normed = nn.BatchNorm1d.forward(self, flat)
        return normed.reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)

    def _step(self, x: Tensor, state: Any, valid: Any = True):
        y, valid, state = super()._step(x, state, valid)
        return y, _per_person(valid, self.persons), state

    def _frame(self, x: Tensor) -> Tensor:
        self._check(x, step=True)
        n, c, v, m = x.shape
        flat = x.permute(0, 3, 2, 1).reshape(n, m * v * c)
        normed = nn.BatchNorm1d.forward(self, flat)
        return normed.reshape(n, m, v, c).permute(0, 1, 3, 2).reshape(n * m, c, v)


class PersonJointMean(Stateless):
    """The mean over joints, then persons: ``(N·M, C, T, V)`` -> ``(N, C, T)``; a step
    ``(N·M, C, V)`` -> ``(N, C)``."""

    def __init__(self, persons: int):
        super().__init__()
        self.persons = persons

    def forward(self, x: Tensor) -> Tensor:
        nm, c, t, v = x.shape
        return x.reshape(nm // self.persons, self.persons, c, t, v).mean(4).mean(1)

    def _step(self, x: Tensor, state: Any, valid: Any = True):
        y, valid, state = super()._step(x, state, valid)
        return y, _per_stream(valid, self.persons), state

    def _frame(self, x: Tensor) -> Tensor:
        nm, c, v = x.shape
        return x.reshape(nm // self.persons, self.persons, c, v).mean(3).mean(1)
