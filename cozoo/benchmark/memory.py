"""Memory of a continual model: the bytes of its state and the peak allocation of one call."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator


def state_bytes(state: object) -> int:
    """Bytes of the distinct storages behind the tensors of a (nested) state."""
    from cozoo.co.export import flatten_state

    tensors, _ = flatten_state(state)
    storages = {}
    for t in tensors:
        storage = t.untyped_storage()
        storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
    return sum(storages.values())


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ logging included) for the duration of the block."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def peak_allocated_bytes(fn: Callable[[], object]) -> int:
    """Peak of the CPU memory allocated while ``fn()`` runs, above what was allocated before.

    Replays the allocations and frees recorded by ``torch.profiler(profile_memory=True)`` in
    time order (an operator's own allocations count at its start).
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr():  # kineto logs its start/stop (and the missing GPU) to fd 2
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = sorted(prof.events(), key=lambda e: e.time_range.start)
    current = peak = 0
    for event in events:
        if event.name == "[memory]":
            current += event.cpu_memory_usage
        else:
            current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak
