"""Benchmarks, measured side by side in one process:
``python -m cozoo.benchmark [speed|core|flops] [KEY=VALUE ...]`` (a Hydra app; config
``cozoo/recipes/benchmark.yaml``; ``core`` is short for ``suite=core``)::

    python -m cozoo.benchmark                                   # speed table of the zoo
    python -m cozoo.benchmark suite=speed models=[cox3d_m] batch_sizes=[1,8] threads=[1,0] \
        repeats=10 save=true                                    # 0 threads: torch's default
    python -m cozoo.benchmark core
    python -m cozoo.benchmark flops pattern='cox3d_*'

- ``speed`` (``speed.py``): each model's regular clip forward against its continual
  ``forward_step``, at the input the model registry gives it (any family: video, skeleton,
  features), with memory, warm-up, long-stream and ``torch.compile`` columns and the published
  figures. ``save=true`` writes the rows as CSV and JSON under ``results_dir`` (``results/``).
- ``flops`` (``flops.py``): params and MACs of every registered model, ours beside the
  published.
- ``core`` (``core.py``): the continual layer library against the raw tensor work it has to do.

Each pair is timed interleaved (A, B, A, B, ...; ``timing.py``); the tables report medians, the
spread (interquartile range over the median) and the machine's load average. Subnormal floats
are flushed to zero for the whole run (``flush_denormal=true``; see
``timing.flushing_denormals``). What the benchmark reads from the registry (input shapes,
builder kwargs, published figures) is in ``registry.py``; files and tables in ``results.py``.
"""

import torch

from cozoo import co

from .cli import SUITES, main, run, shorthand_argv
from .compiling import COMPILE_COLUMNS, bench_compiled, compiled_past_warm_up
from .core import bench_chunk, bench_compile, bench_step, conv_stack, run_core
from .flops import flops_row, run_flops
from .memory import peak_allocated_bytes, state_bytes
from .registry import builder_kwargs, input_label, model_input, published
from .results import (
    batch_summary,
    print_core_table,
    print_flops_table,
    print_speed_table,
    write_json,
    write_results,
)
from .speed import SPEEDUP_TARGETS, bench_speed, run_speed
from .timing import (
    environment,
    flushes_denormals,
    flushing_denormals,
    interleaved,
    load_average,
    resolve_threads,
)

__all__ = [
    "COMPILE_COLUMNS",
    "SPEEDUP_TARGETS",
    "SUITES",
    "batch_summary",
    "bench_chunk",
    "bench_compile",
    "bench_compiled",
    "bench_speed",
    "bench_step",
    "builder_kwargs",
    "co",
    "compiled_past_warm_up",
    "conv_stack",
    "environment",
    "flops_row",
    "flushes_denormals",
    "flushing_denormals",
    "input_label",
    "interleaved",
    "load_average",
    "main",
    "model_input",
    "peak_allocated_bytes",
    "print_core_table",
    "print_flops_table",
    "print_speed_table",
    "published",
    "resolve_threads",
    "run",
    "run_core",
    "run_flops",
    "run_speed",
    "shorthand_argv",
    "state_bytes",
    "torch",
    "write_json",
    "write_results",
]
