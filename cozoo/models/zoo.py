"""The model-zoo table, generated from the weights' meta so that numbers cannot drift.

``python -m cozoo.models.zoo`` prints the Markdown table; ``--update README.md`` rewrites the
table between the ``<!-- zoo-table:start -->`` and ``<!-- zoo-table:end -->`` markers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from ._registry import get_model_weights, list_models

START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"

_DISPLAY = {
    "cox3d_s": "CoX3D-S",
    "cox3d_m": "CoX3D-M",
    "cox3d_l": "CoX3D-L",
    "coslow": "CoSlow",
    "coi3d": "CoI3D",
}


def zoo_rows() -> List[dict]:
    """One row per (model, pool size) of the default checkpoint's published results."""
    rows = []
    for name in list_models():
        enum = get_model_weights(name)
        if enum is None:
            continue
        weights = enum.DEFAULT
        meta = weights.meta
        clip, step = meta["macs_per_clip"], meta["macs_per_step"]
        for pool, top1 in sorted(meta["published"]["per_pool_size"].items()):
            rows.append(
                {
                    "model": _DISPLAY.get(name, name),
                    "builder": name,
                    "pool_size": pool,
                    "top1": top1,
                    "params_m": meta["num_params"] / 1e6,
                    "clip": clip["value"],
                    "step": step["value"],
                    "unit": step["unit"],
                    "reduction": clip["value"] / step["value"],
                    "receptive_field": meta["receptive_field"]["per_pool_size"][pool],
                    "delay": meta["delay"]["per_pool_size"][pool],
                    "weights": f"{enum.__name__}.{weights.name}",
                }
            )
    return rows


def zoo_table() -> str:
    """The Markdown table of ``zoo_rows``."""
    lines = [
        "| Model | Pool size P | Kinetics-400 top-1 (%) | Params (M) | GMACs per clip | "
        "GMACs per step | Reduction | Receptive field | Delay (steps) | Weights (DEFAULT) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in zoo_rows():
        lines.append(
            f"| {r['model']} (`{r['builder']}`) | {r['pool_size']} | {r['top1']:.2f} | "
            f"{r['params_m']:.2f} | {r['clip']:.2f} | {r['step']:.2f} | {r['reduction']:.1f}x | "
            f"{r['receptive_field']} | {r['delay']} | `{r['weights']}` |"
        )
    return "\n".join(lines)


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers in ``path``; True if the file changed."""
    text = path.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{path}: no {START} ... {END} markers to put the zoo table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{zoo_table()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cozoo.models.zoo", description=__doc__)
    parser.add_argument("--update", type=Path, help="rewrite the table in this Markdown file")
    args = parser.parse_args(argv)
    if args.update is None:
        print(zoo_table())
    else:
        changed = update_readme(args.update)
        print(f"{args.update}: {'updated' if changed else 'already up to date'}")


if __name__ == "__main__":
    main()
