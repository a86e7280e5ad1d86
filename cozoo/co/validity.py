"""Validity and step counters: the host-side bookkeeping of which streams output at a step.

Validity (``valid``) says which streams of a batch carry a real frame at a step: ``True`` (all),
``False`` (none) or a tuple of ``B`` bools (mixed, after a per-stream reset). Step counters count
the valid frames a stream consumed (saturated after the warm-up, 0 while fresh). Both are Python
values, so deciding whether a step produced an output never reads a device tensor; in
``tensor_mode`` (export) they are tensors instead, and ``tick`` computes with tensor ops.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = [
    "Valid",
    "advance_counter",
    "all_valid",
    "collapse",
    "expand_valid",
    "first_output_offset",
    "reset_counter",
    "select_rows",
    "tick",
    "valid_mask",
]

Valid = Union[bool, Tuple[bool, ...]]


def expand_valid(valid: Valid, batch: int) -> Tuple[bool, ...]:
    return valid if isinstance(valid, tuple) else (valid,) * batch


def collapse(values: Sequence) -> Any:
    """A per-stream tuple whose entries are all equal collapses to that one value."""
    first = values[0]
    for v in values:
        if v != first:
            return tuple(values)
    return first


def valid_mask(valid: Valid, like: Tensor) -> Tensor:
    """A (B, 1, ..., 1) bool tensor on ``like``'s device that broadcasts against ``like``."""
    if isinstance(valid, Tensor):
        mask = valid
    else:
        flags = expand_valid(valid, like.shape[0])
        mask = torch.tensor(flags, dtype=torch.bool, device=like.device)
    return mask.view((-1,) + (1,) * (like.dim() - 1))


def select_rows(valid: Valid, new: Any, old: Any) -> Any:
    """Rows of ``new`` where ``valid`` (per stream), rows of ``old`` elsewhere.

    Works on tensors and on (nested) tuples of tensors; ``valid`` True/False short-cuts.
    """
    if valid is True:
        return new
    if valid is False:
        return old
    if isinstance(new, Tensor):
        return torch.where(valid_mask(valid, new), new, old)
    if isinstance(new, tuple):
        return tuple(select_rows(valid, n, o) for n, o in zip(new, old))
    return new


def tick(counter, valid: Valid, warmup: int, stride: int, batch: int):
    """Advance per-stream step counters by one step.

    A stream whose counter is ``c`` (valid frames consumed so far) produces an output for this
    frame iff ``c >= warmup`` and ``(c - warmup) % stride == 0``. Counters saturate after the
    warm-up (only the stride phase is kept), so they take finitely many values; 0 means fresh.

    Returns ``(valid_out, next_counter, fresh)``; ``fresh`` marks streams whose first frame
    this is (their state rows must be (re)initialised).
    """
    if isinstance(counter, Tensor) or isinstance(valid, Tensor):
        return _tick_tensors(counter, valid, warmup, stride)
    if valid is True and counter.__class__ is int:
        out = counter >= warmup and (counter - warmup) % stride == 0
        nxt = counter + 1
        if nxt >= max(warmup, 1) + stride:  # saturate; 0 stays reserved for "fresh"
            nxt -= stride
        return out, nxt, counter == 0
    if valid is False:
        return False, counter, False
    counters = counter if isinstance(counter, tuple) else (counter,) * batch
    flags = expand_valid(valid, batch)
    outs, nexts, fresh = [], [], []
    for c, v in zip(counters, flags):
        if v:
            o, n, f = tick(c, True, warmup, stride, 1)
        else:
            o, n, f = False, c, False
        outs.append(o)
        nexts.append(n)
        fresh.append(f)
    return collapse(outs), collapse(nexts), collapse(fresh)


def _tick_tensors(counter: Tensor, valid: Union[bool, Tensor], warmup: int, stride: int):
    """``tick`` as tensor ops, without branches on values: the form that export traces.

    ``counter`` is a (B,) int64 tensor; ``valid`` a (B,) bool tensor or a Python bool.
    """
    # Every op here is repeated per windowed module of an exported graph: none that is known
    # to do nothing (the phase of stride 1, a tensor already on the device) is traced.
    out = counter >= warmup
    if stride != 1:
        out = out & ((counter - warmup) % stride == 0)
    nxt = counter + 1
    nxt = torch.where(nxt >= max(warmup, 1) + stride, nxt - stride, nxt)
    fresh = counter == 0
    if valid is True:
        return out, nxt, fresh
    if not isinstance(valid, Tensor):
        valid = torch.as_tensor(valid, device=counter.device)
    return out & valid, torch.where(valid, nxt, counter), fresh & valid


def all_valid(valids: Sequence[Valid]) -> Valid:
    """Streams that are valid in every one of several branches."""
    if all(v is True for v in valids):
        return True
    if any(v is False for v in valids):
        return False
    tensors = [v for v in valids if isinstance(v, Tensor)]
    if tensors:
        return functools.reduce(torch.logical_and, tensors)
    per_stream = [v for v in valids if isinstance(v, tuple)]
    batch = len(per_stream[0])
    flags = [all(v if isinstance(v, bool) else v[i] for v in valids) for i in range(batch)]
    return collapse(flags)


def advance_counter(counter: int, steps: int, warmup: int, stride: int) -> int:
    """The saturated counter after ``steps`` valid frames (uniform streams)."""
    nxt = counter + steps
    base = max(warmup, 1)  # 0 stays reserved for "fresh"
    if nxt >= base + stride:
        nxt = base + (nxt - base) % stride
    return nxt


def first_output_offset(counter: int, warmup: int, stride: int) -> int:
    """Index, within the next chunk, of the first frame that yields an output."""
    if counter < warmup:
        return warmup - counter
    return (-(counter - warmup)) % stride


def reset_counter(counter, streams: Optional[Sequence[int]], batch: int):
    """Counters set back to 0 (fresh) for ``streams`` (all if None)."""
    if streams is None:
        return 0
    counters = list(counter if isinstance(counter, tuple) else (counter,) * batch)
    for i in streams:
        if not -batch <= i < batch:
            raise IndexError(f"stream index {i} is out of range for a batch of {batch} streams")
        counters[i] = 0
    return collapse(counters)
