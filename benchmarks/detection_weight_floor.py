"""The memory-bandwidth floor of one CoOadTR step at batch 1.

A batch-1 step multiplies one vector by every weight matrix of the network (about 42 MB of
float32 for CoOadTR-b1 with Kinetics features), so it cannot be faster than reading those
weights from memory once. This script times, side by side in one process and thread setting:

- ``copy``: reading + writing a buffer of the weights' size (``torch.Tensor.copy_``): the
  machine's memory bandwidth, reported in GB/s;
- ``gemv``: ``x @ W.T`` for every weight matrix of the step (batch 1): the floor a step cannot
  beat;
- ``step``: the eager ``forward_step`` of the model (warmed up, random weights);

and prints the share of the floor the step reaches (``gemv / step``).

    python benchmarks/detection_weight_floor.py [--model cooadtr_b1] [--threads 1] [--batch 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, List

import torch

from cozoo.models import create_model


def _median_ms(fn: Callable[[], object], repeats: int, inner: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) * 1e3 / inner)
    return sorted(times)[len(times) // 2]


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="cooadtr_b1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    dim = model.feature_dim if hasattr(model, "feature_dim") else model.network.feature_dim
    matrices = [p for p in model.parameters() if p.dim() == 2 and p.shape[0] > 64]
    weight_bytes = sum(p.nbytes for p in model.parameters())
    source = torch.randn(weight_bytes // 4)
    target = torch.empty_like(source)
    vectors = [torch.randn(args.batch, m.shape[1]) for m in matrices]
    steps = torch.randn(8, args.batch, dim)
    counter = iter(range(1 << 62))
    with torch.inference_mode():
        model.warm_up((args.batch, dim))

        def gemv() -> None:
            for m, v in zip(matrices, vectors):
                torch.matmul(v, m.t())

        def step() -> None:
            model.forward_step(steps[next(counter) % 8])

        rows = {}
        for _ in range(2):  # interleaved rounds; the second is reported
            rows["copy"] = _median_ms(lambda: target.copy_(source), args.repeats, 4)
            rows["gemv"] = _median_ms(gemv, args.repeats, 8)
            rows["step"] = _median_ms(step, args.repeats, 8)
    bandwidth = 2 * weight_bytes / (rows["copy"] / 1e3) / 1e9
    print(
        f"{args.model}, batch {args.batch}, {args.threads} thread(s): weights "
        f"{weight_bytes / 1e6:.1f} MB; copy {rows['copy']:.2f} ms ({bandwidth:.1f} GB/s "
        f"read+write); gemv floor {rows['gemv']:.2f} ms; step {rows['step']:.2f} ms; "
        f"the step reaches {rows['gemv'] / rows['step']:.0%} of the floor"
    )


if __name__ == "__main__":
    main()
