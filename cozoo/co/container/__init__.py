"""Composition: ``Sequential``, ``Broadcast``, ``Parallel``, ``ParallelDispatch``, ``Reduce``,
``BroadcastReduce``, ``Conditional`` (``Residual``, built of them, is in ``cozoo.co.residual``).

Containers step their children through the children's pure functions, so a container's state
is the tuple of its children's states: ``get_state()`` snapshots the whole network and
``set_state()`` restores it. Parallel branches are aligned automatically: a branch whose delay
is shorter than the others' gets a ``Delay`` appended, so all branches emit the outputs of the
same input step together. Raw ``torch.nn`` modules are converted with ``co.continual``.

Streams of several tensors (after ``Broadcast``) carry one validity per branch::

    x --Broadcast(2)--> [x, x] --Parallel(a, b)--> [a(x), b(x)] --Reduce("sum")--> a(x) + b(x)

The package, one job per module: ``base`` (what every container shares: its state is the tuple
of its children's states; temporal helpers), ``sequential``, ``parallel`` (``Broadcast``,
``Parallel``, ``ParallelDispatch``), ``reduce`` (the reducers, ``Reduce``, ``BroadcastReduce``)
and ``conditional``.
"""

from .conditional import Conditional
from .parallel import Broadcast, Parallel, ParallelDispatch
from .reduce import BroadcastReduce, Reduce, reduce_concat, reduce_max, reduce_mul, reduce_sum
from .sequential import Sequential

__all__ = [
    "Broadcast",
    "BroadcastReduce",
    "Conditional",
    "Parallel",
    "ParallelDispatch",
    "Reduce",
    "Sequential",
    "reduce_concat",
    "reduce_max",
    "reduce_mul",
    "reduce_sum",
]
