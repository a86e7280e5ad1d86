"""``RecyclingPositionalEncoding``: positional embeddings indexed cyclically, for streams.

A stream has no absolute position 0, so positions are taken modulo ``num_embeds`` (``K``) and a
model is trained on windows whose positional offset varies (the "recycling" trick of Continual
Transformers, arXiv 2201.06268). The module keeps a position counter ``p``::

    forward(clip (N, E, T))      adds P[(p + t) mod K], t = 0..T-1 (T <= K); then
                                 p += forward_update_index_steps      (training augmentation)
    forward_step(x_t (N, E))     adds P[p];  p += 1
    forward_steps(clip)          adds P[(p + t) mod K];  p += T      (any T: positions wrap)
    clean_state()                p = 0

``P`` is a learned ``nn.Embedding(K, E)`` (``pe.weight``) or the fixed cyclic table of Ma et al.
2021 (``CyclicPositionalEncoding``, buffer ``pe.pattern``). Paper usage: ``K = 2L - 1`` for
windows of ``L`` tokens, so that a window never reuses a row.

The counter is the module's state (``get_state()`` is ``None`` while it is 0 and fresh), so a
container's ``get_state``/``set_state`` snapshot includes it, ``update_state=False`` leaves it,
and ``clean_state(streams=[i])`` restarts stream ``i`` at position 0 while the others continue.
Unlike the other continual modules, ``forward`` reads and advances it (as the reference does).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .checks import StepShapeError, check_step_input
from .modes import in_tensor_mode
from .module import CoModule
from .validity import Valid, collapse, reset_counter

__all__ = ["CyclicPositionalEncoding", "PositionState", "RecyclingPositionalEncoding"]


class PositionState(NamedTuple):
    """State of a ``RecyclingPositionalEncoding``: the position of the next step."""

    counter: Any  # position in [0, K): an int, a per-stream tuple of ints, or an (N,) tensor
    shape: Optional[tuple]  # the (N, E) step shape seen last (needed for per-stream resets)


def _linspace(start: float, stop: float, num: int) -> list:
    """``numpy.linspace(start, stop, num)`` computed with the same float operations."""
    if num == 1:
        return [start]
    step = (stop - start) / (num - 1)
    values = [i * step + start for i in range(num)]
    values[-1] = stop
    return values


def cyclic_positional_table(
    num_embeddings: int, embedding_dim: int, mean_pooling: bool = True
) -> Tensor:
    """The fixed cyclic positional encoding (Ma et al. 2021, "Learning to Iteratively Solve
    Routing Problems with Dual-Aspect Collaborative Transformer", appendix B): (K, D) float32.

    Dimension ``i`` is a reflected sine (even ``i``) or cosine (odd ``i``) wave whose period
    ``s_i`` grows with ``i`` (a few dimensions share one period), sampled at K evenly spaced
    points of a 0.01-spaced grid covering whole periods, so row ``K-1`` is followed cyclically by
    row 0. Rows are then smoothed over 5 cyclic neighbours and centred per dimension.
    """
    k, dim = num_embeddings, embedding_dim
    if k < 1 or dim < 2:
        raise ValueError(
            f"CyclicPositionalEncoding: need num_embeddings >= 1 and embedding_dim >= 2, "
            f"got {num_embeddings} and {embedding_dim}"
        )
    half = dim // 2
    skips = [int(v) for v in _linspace(k ** (1.0 / half), float(k), half)]
    table = torch.empty(k, dim, dtype=torch.float64)
    for i in range(dim):
        j = 3 * (i // 3) + 1
        skip = skips[j] if j < half else skips[half - 1]
        if k > skip:
            end = math.ceil(k / skip) * skip
        else:
            end = k
            skip = k
        # numpy.arange(0, end + 0.01, 0.01): its length, and value i * 0.01 at index i.
        grid_len = math.ceil((end + 0.01) / 0.01)
        last = grid_len - 1
        index = torch.tensor([math.floor(v) for v in _linspace(0.0, float(last), k + 1)][:k])
        x = index.to(torch.float64) * 0.01
        omega = 2 * math.pi / skip
        phase = 0.0 if i <= half else 2 * math.pi * (half - i) / half
        wave = torch.sin if i % 2 == 0 else torch.cos
        period = 2 * math.pi / omega
        table[:, i] = wave(omega * torch.abs(torch.fmod(x, 2 * period) - period) + phase)
    # Smoothing and centring in float32, in this order, as the published tables were made.
    table = table.to(torch.float32)
    mean = table.mean(0)
    if mean_pooling:
        rows = torch.arange(k)
        pooled = torch.zeros_like(table)
        for shift in (-2, -1, 0, 1, 2):
            pooled += table[(rows + shift) % k]
        table = pooled * (1.0 / 5)
    return table - mean


class CyclicPositionalEncoding(nn.Module):
    """A fixed cyclic positional table: ``forward(positions)`` -> ``pattern[positions]``.

    The table (``num_embeddings``, ``embedding_dim``) is the buffer ``pattern``.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, mean_pooling: bool = True):
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.register_buffer(
            "pattern", cyclic_positional_table(num_embeddings, embedding_dim, mean_pooling)
        )

    def forward(self, input: Tensor) -> Tensor:
        return self.pattern[input]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class RecyclingPositionalEncoding(CoModule):
    """Adds cyclically indexed positional embeddings to clips ``(N, E, T)`` / steps ``(N, E)``.

    Args:
        embed_dim: ``E``.
        num_embeds: ``K``, the number of positions before they recycle.
        learned: a learned ``nn.Embedding`` (``pe.weight``) or the fixed cyclic table
            (``pe.pattern``).
        forward_update_index_steps: how far each ``forward`` call advances the position
            (0: ``forward`` always starts at the current position).

    See the module docstring for how each mode uses and advances the position. ``delay`` 0,
    ``receptive_field`` 1; ``pad_end`` has no effect.
    """

    def __init__(
        self,
        embed_dim: int,
        num_embeds: int,
        learned: bool = True,
        forward_update_index_steps: int = 1,
    ):
        super().__init__()
        if num_embeds < 1:
            raise ValueError(
                f"RecyclingPositionalEncoding: num_embeds must be >= 1, got {num_embeds}"
            )
        self.embed_dim = embed_dim
        self.num_embeds = num_embeds
        self.learned = learned
        self.pe = (
            nn.Embedding(num_embeds, embed_dim)
            if learned
            else CyclicPositionalEncoding(num_embeds, embed_dim)
        )
        self.forward_update_index_steps = forward_update_index_steps

    # ---- position bookkeeping -----------------------------------------------------------------
    def _position(self, state: Optional[PositionState]) -> Any:
        return 0 if state is None else state.counter

    def _advance(self, position: Any, steps: int) -> Any:
        if isinstance(position, Tensor):
            return (position + steps) % self.num_embeds
        if isinstance(position, tuple):
            return tuple((p + steps) % self.num_embeds for p in position)
        return (position + steps) % self.num_embeds

    def _embeddings(self, position: Any, steps: int, like: Tensor) -> Tensor:
        """Embeddings of ``steps`` consecutive positions, channel-first: (1 | N, E, steps)."""
        offsets = torch.arange(steps, device=like.device)
        if isinstance(position, (tuple, Tensor)):
            start = (
                (position if isinstance(position, Tensor) else torch.tensor(position))
                .to(like.device)
                .view(-1, 1)
            )
            rows = self.pe((start + offsets) % self.num_embeds)  # (N, T, E)
        else:
            rows = self.pe((offsets + position) % self.num_embeds).unsqueeze(0)  # (1, T, E)
        return rows.transpose(1, 2).to(like.dtype)

    def _check_batch(self, position: Any, x: Tensor) -> None:
        if isinstance(position, tuple) and len(position) != x.shape[0]:
            raise StepShapeError(
                f"RecyclingPositionalEncoding: the stored positions are per stream for a batch of "
                f"{len(position)}, got a batch of {x.shape[0]}; call clean_state() first"
            )

    @property
    def state_index(self) -> Tensor:
        """The current position (0-d int64 tensor, or (N,) after a per-stream reset)."""
        return torch.as_tensor(self._position(self.get_state()), dtype=torch.int64)

    @state_index.setter
    def state_index(self, value: Union[int, Tensor]) -> None:
        if isinstance(value, Tensor):
            value = int(value.item()) if value.numel() == 1 else tuple(value.tolist())
        position = self._advance(value, 0)
        state = self.get_state()
        self.set_state(PositionState(position, None if state is None else state.shape))

    # ---- modes ----------------------------------------------------------------------------
    def forward(self, input: Tensor, update_index_steps: Optional[int] = None) -> Tensor:
        """Clip ``(N, E, T)`` with ``T <= num_embeds``: adds the embeddings of positions
        ``p .. p+T-1`` (mod K), then advances ``p`` by ``forward_update_index_steps`` (or
        ``update_index_steps`` if given)."""
        self._check_clip(input, 3)
        steps = input.shape[2]
        if steps > self.num_embeds:
            raise ValueError(
                f"RecyclingPositionalEncoding: a clip of {steps} steps is longer than num_embeds="
                f"{self.num_embeds}, so positions would repeat within it (use forward_steps to "
                "stream longer inputs)"
            )
        state = self.get_state()
        position = self._position(state)
        self._check_batch(position, input)
        output = input + self._embeddings(position, steps, input)
        update = (
            self.forward_update_index_steps if update_index_steps is None else update_index_steps
        )
        self.set_state(PositionState(self._advance(position, update), tuple(input[:, :, 0].shape)))
        return output

    def _step(self, x: Tensor, state: Optional[PositionState], valid: Valid = True):
        if valid is False:
            return None, False, state
        if not in_tensor_mode() and (x.dim() != 2 or x.shape[1] != self.embed_dim):
            check_step_input(self, x, 2, self.embed_dim)
        position = self._position(state)
        self._check_batch(position, x)
        if isinstance(position, Tensor):  # per-stream positions, as export traces them
            embedding = self.pe(position)  # (N, E)
        elif isinstance(position, tuple):
            embedding = self.pe(torch.tensor(position, device=x.device))
        else:
            embedding = self.pe.weight[position] if self.learned else self.pe.pattern[position]
        y = x + embedding.to(x.dtype)
        nxt = self._advance(position, 1)
        if valid is not True:  # streams without a frame keep their position
            if isinstance(valid, Tensor) or isinstance(position, Tensor):
                current = torch.as_tensor(position, device=x.device).expand(x.shape[0])
                flags = torch.as_tensor(valid, device=x.device)
                nxt = torch.where(flags, torch.as_tensor(nxt, device=x.device), current)
            else:
                batch = x.shape[0]
                current = position if isinstance(position, tuple) else (position,) * batch
                advanced = nxt if isinstance(nxt, tuple) else (nxt,) * batch
                nxt = collapse([n if v else c for n, c, v in zip(advanced, current, valid)])
        if in_tensor_mode() and state is not None:
            shape = state.shape  # under export tracing, x.shape is made of tensors
        else:
            shape = tuple(x.shape)
        return y, valid, PositionState(nxt, shape)

    def _steps(self, x: Optional[Tensor], state: Optional[PositionState], pad_end: bool = False):
        if x is None or x.shape[2] == 0:
            return None, state, None
        self._check_clip(x, 3)
        position = self._position(state)
        self._check_batch(position, x)
        steps = x.shape[2]
        y = x + self._embeddings(position, steps, x)
        return y, PositionState(self._advance(position, steps), tuple(x[:, :, 0].shape)), None

    def _reset_streams(self, state: PositionState, streams: Sequence[int]) -> PositionState:
        if state.shape is None:
            raise RuntimeError(
                "RecyclingPositionalEncoding: per-stream clean_state needs a batch seen by a step"
            )
        position = state.counter
        if isinstance(position, Tensor):
            position = tuple(position.tolist())
        return state._replace(counter=reset_counter(position, streams, state.shape[0]))

    def extra_repr(self) -> str:
        text = f"embed_dim={self.embed_dim}, num_embeds={self.num_embeds}"
        if not self.learned:
            text += ", learned=False"
        if self.forward_update_index_steps != 1:
            text += f", forward_update_index_steps={self.forward_update_index_steps}"
        return text
