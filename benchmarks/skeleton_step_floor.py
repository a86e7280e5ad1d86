"""The compute floor of one CoST-GCN* step: the tensor operations a step cannot avoid, with no
framework around them (BatchNorms folded, graph units in the two-matmul form of
``cozoo/models/skeleton/folded.py``, each temporal conv one matmul over its 9-frame window).

    python benchmarks/skeleton_step_floor.py [--threads 1] [--batch 1]

Prints ms per step next to the eager ``costgcn_mod`` step (same batch and threads, random
weights, subnormals flushed), so the gap between them is the step's framework overhead. Not a
model: the weights are random and the outputs are not checked (``tests/models/skeleton`` check
the real step).
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List

import torch

from cozoo.models import create_model

WIDTHS = [64] * 4 + [128] * 3 + [256] * 3
JOINTS, PERSONS, KERNEL = 25, 2, 9


def _blocks(batch: int) -> List[Dict]:
    rows = batch * PERSONS
    blocks, c_in = [], 3
    for c in WIDTHS:
        down = c_in != c
        blocks.append(
            {
                "c": c,
                "down": down,
                "unit": torch.randn((4 if down else 3) * c, c_in) * 0.05,
                "edges": torch.rand(3 * JOINTS, JOINTS) * 0.1,
                "bias": torch.randn(c, 1) * 0.01,
                "tcn": torch.randn(c, KERNEL * c) * 0.02,
                "tcn_bias": torch.randn(c, 1) * 0.01,
                "window": [torch.zeros(rows, c, JOINTS) for _ in range(KERNEL - 1)],
                "held": [torch.zeros(rows, c_in, JOINTS) for _ in range(KERNEL // 2)],
                "shortcut": torch.randn(c, c_in) * 0.05 if down and blocks else None,
            }
        )
        c_in = c
    return blocks


def _step(blocks: List[Dict], x: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    rows = x.shape[0]
    for index, b in enumerate(blocks):
        c = b["c"]
        mixed = torch.matmul(b["unit"], x)
        branches = mixed[:, : 3 * c].reshape(rows, 3, c, JOINTS).transpose(1, 2)
        y = torch.matmul(branches.reshape(rows, c, 3 * JOINTS), b["edges"]).add_(b["bias"])
        y = y.add_(mixed[:, 3 * c :] if b["down"] else x).relu_()
        window = b["window"] + [y]
        b["window"] = window[1:]
        z = torch.matmul(b["tcn"], torch.cat(window, 1)).add_(b["tcn_bias"])
        if index:
            residual, b["held"] = b["held"][0], b["held"][1:] + [x]
            if b["shortcut"] is not None:
                residual = torch.matmul(b["shortcut"], residual)
            z = z.add_(residual)
        x = z.relu_()
    features = x.reshape(-1, PERSONS, x.shape[1], JOINTS).mean(3).mean(1)
    return torch.nn.functional.linear(features, fc)


def _ms(fn, repeats: int) -> float:
    for _ in range(20):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    blocks, fc = _blocks(args.batch), torch.randn(60, 256)
    frame = torch.randn(args.batch * PERSONS, 3, JOINTS)
    model = create_model("costgcn_mod").eval()
    step = torch.randn(args.batch, 3, JOINTS, PERSONS)
    with torch.inference_mode():
        model.warm_up(step.shape)
        floor = _ms(lambda: _step(blocks, frame, fc), args.repeats)
        eager = _ms(lambda: model.forward_step(step), args.repeats)
    print(
        f"batch {args.batch}, {args.threads} thread(s): floor {floor:.2f} ms per step, "
        f"costgcn_mod forward_step {eager:.2f} ms ({eager / floor:.2f}x the floor)"
    )


if __name__ == "__main__":
    main()
