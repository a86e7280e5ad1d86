"""The model-zoo tables, generated from the weights' meta so that numbers cannot drift.

``python -m cozoo.models.zoo`` prints one Markdown table per model family; ``--update README.md``
rewrites the tables between the ``<!-- zoo-table:start -->`` and ``<!-- zoo-table:end -->``
markers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional

from ._meta import Result, WeightsMeta, variant_label
from ._registry import get_model_info, list_models

START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def _headline(meta: WeightsMeta) -> List[Result]:
    """The results the table shows: those of the entry's first metric given in %, in the first
    result's table, single stream (a skeleton entry also lists its 2-stream results)."""
    first = next((r for r in meta.published if r.unit == "%"), None)
    if first is None:
        return []
    return [
        r
        for r in meta.published
        if r.metric == first.metric
        and r.setting.get("table") == first.setting.get("table")
        and r.setting.get("streams", 1) == 1
    ]


def _setting_label(result: Result) -> str:
    """The variant's builder kwargs, else the evaluation setting (``split=xsub``)."""
    if result.variant:
        return variant_label(result.variant)
    shown = {k: v for k, v in result.setting.items() if k in ("split", "modality", "features")}
    return variant_label(shown)


def zoo_rows(family: Optional[str] = None) -> List[dict]:
    """One row per (model, published result of its headline metric) of the default weights."""
    rows = []
    for name in list_models(family=family):
        info = get_model_info(name)
        if info.weights is None:
            continue
        weights = info.weights.DEFAULT
        meta = weights.meta
        clip, step = meta.macs_per_clip, meta.macs_per_step
        for result in _headline(meta):
            variant = meta.variant(**result.variant)
            rows.append(
                {
                    "model": meta.display_name,
                    "builder": name,
                    "family": info.family,
                    "variant": _setting_label(result),
                    "metric": f"{result.dataset} {result.metric} ({result.unit})",
                    "value": result.value,
                    "params_m": meta.num_params / 1e6,
                    "clip": clip.value,
                    "step": step.value,
                    "unit": step.unit,
                    "reduction": clip.value / step.value,
                    "receptive_field": None if variant is None else variant.receptive_field,
                    "delay": None if variant is None else variant.delay,
                    "weights": repr(weights),
                }
            )
    return rows


def _cell(value: Optional[int]) -> str:
    return "–" if value is None else str(value)


def _macs(value: float) -> str:
    """Two decimals; three significant digits below 0.1 (0.0106 GMACs, not 0.01)."""
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3g}"


def zoo_table(family: Optional[str] = None) -> str:
    """The Markdown tables of ``zoo_rows``, one per family (and per headline metric)."""
    rows = zoo_rows(family)
    tables = []
    for group in dict.fromkeys((r["family"], r["metric"], r["unit"]) for r in rows):
        fam, metric, unit = group
        lines = [
            f"| Model | Variant | {metric} | Params (M) | {unit} per clip | {unit} per step | "
            "Reduction | Receptive field | Delay (steps) | Weights (DEFAULT) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if (r["family"], r["metric"], r["unit"]) != group:
                continue
            lines.append(
                f"| {r['model']} (`{r['builder']}`) | `{r['variant']}` | {r['value']:.2f} | "
                f"{r['params_m']:.2f} | {_macs(r['clip'])} | {_macs(r['step'])} | "
                f"{r['reduction']:.1f}x | {_cell(r['receptive_field'])} | {_cell(r['delay'])} | "
                f"`{r['weights']}` |"
            )
        tables.append(f"Family `{fam}`:\n\n" + "\n".join(lines))
    return "\n\n".join(tables)


def update_readme(path: Path) -> bool:
    """Rewrite the tables between the markers in ``path``; True if the file changed."""
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
    parser.add_argument("--family", default=None, help="one family only (e.g. video)")
    args = parser.parse_args(argv)
    if args.update is None:
        print(zoo_table(args.family))
    else:
        changed = update_readme(args.update)
        print(f"{args.update}: {'updated' if changed else 'already up to date'}")


if __name__ == "__main__":
    main()
