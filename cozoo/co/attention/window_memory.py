"""The key/value window of a single-output attention step, without re-stacking it every step.

A step attends over the last L keys and values, kept in the state as a tuple of the L-1 older
ones (oldest first). Stacking that tuple into an ``(N, h, L, d)`` window copies the whole window
every step, which at larger batches costs more than the attention itself. Here the tuple's
entries are views into one append-only buffer ``(N, h, C, d)`` (C = ``CAPACITY`` x L slots):
a step writes its new key into the next free slot and reads the window as a view::

    buffer slots   0 1 2 ... s-L+1 ... s | s+1 (written by this step) | free ...
    window         = buffer[:, :, s-L+2 : s+2]   (no copy)

States stay snapshots: a slot is written only when no state holds it yet (the buffer's fill
mark is exactly the next slot), so every tensor of every existing state keeps its values. A step
from an older snapshot (a branch), a full buffer, a plain tuple instead of a ``WindowMemory``
(a fresh stream, rows selected for some streams only, a copy, a moved module) or a traced step
falls back to a new buffer or to stacking, which give the same numbers.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..modes import in_tensor_mode

__all__ = ["CAPACITY", "WindowMemory", "append_to_window"]

#: Buffer slots per window length: a new buffer (one window copy) every ~(CAPACITY-1) L steps.
CAPACITY = 8
_FILL = "_cozoo_window_fill"


class WindowMemory(tuple):
    """The kept entries (a tuple of ``(N, h, d)`` tensors, oldest first) that are consecutive
    slots ``first, first+1, ...`` of ``buffer`` ``(N, h, C, d)``. Anything that rebuilds the
    tuple (a copy, a row selection, a move to another device, export flattening) gets a plain
    tuple or one without a buffer, which the next step simply stacks."""

    buffer: Optional[Tensor]
    first: int

    def __new__(cls, entries=(), buffer: Optional[Tensor] = None, first: int = 0):
        memory = super().__new__(cls, entries)
        memory.buffer, memory.first = buffer, first
        return memory

    def __reduce__(self):
        return tuple, (tuple(self),)


def _writable_slot(memory: Tuple[Tensor, ...], new: Tensor) -> Optional[Tuple[Tensor, int]]:
    """``(buffer, slot)`` where the entry after ``memory`` can be written in place, or None."""
    buffer = getattr(memory, "buffer", None)
    if buffer is None or buffer.device != new.device or buffer.dtype != new.dtype:
        return None
    slot = memory.first + len(memory)
    if slot >= buffer.shape[2] or getattr(buffer, _FILL, None) != slot:
        return None  # full, or a newer state already holds the slot: this step is a branch
    if buffer.shape[:2] + buffer.shape[3:] != new.shape:
        return None
    return buffer, slot


def append_to_window(memory: Tuple[Tensor, ...], new: Tensor) -> Tuple[Tensor, Tuple[Tensor, ...]]:
    """``memory`` (L-1 entries ``(N, h, d)``, oldest first) and ``new``: the window ``(N, h, L,
    d)`` and the next memory (its last L-1 entries), without copying the window when it can."""
    if not memory or in_tensor_mode() or new.requires_grad:
        entries = tuple(memory) + (new,)
        return torch.stack(entries, 2), entries[1:]
    found = _writable_slot(memory, new)
    if found is not None:
        buffer, slot = found
        try:
            buffer[:, :, slot].copy_(new)
        except RuntimeError:  # e.g. an inference tensor written outside inference mode
            found = None
    if found is None:
        length = len(memory) + 1
        buffer = new.new_empty(new.shape[:2] + (CAPACITY * length,) + new.shape[2:])
        buffer[:, :, : length - 1] = torch.stack(tuple(memory), 2)
        buffer[:, :, length - 1] = new
        slot = length - 1
    setattr(buffer, _FILL, slot + 1)
    start = slot - len(memory)
    window = buffer[:, :, start : slot + 1]
    return window, WindowMemory(window[:, :, 1:].unbind(2), buffer, start + 1)
