"""The results table of an evaluation: what was measured, beside what was published.

A task turns its logged metrics into ``ResultRow`` s (``ContinualTask.results_table``);
``format_table`` renders any task's rows as one Markdown table::

    | model   | variant      | weights             | mode      | top-1 (%) | top-5 (%) | published top-1 (%) | Δ     | steps/s |
    | cox3d_m | pool_size=64 | CoX3D_M_Weights.... | clip      | ...       | ...       | –                   | –     | –       |
    | cox3d_m | pool_size=64 | CoX3D_M_Weights.... | continual | ...       | ...       | 71.03               | -0.53 | 35.1    |
"""  # noqa: E501

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from cozoo.models import Result, WeightsEnum, get_model_weights

__all__ = ["ResultRow", "format_table", "published_result", "weights_label", "weights_member"]


@dataclass
class ResultRow:
    """One row: ``metrics`` (column -> value, e.g. ``{"top-1 (%)": 70.5}``) of ``mode``; the
    published value of the ``headline`` column, when there is one, goes beside it."""

    model: str
    variant: str
    weights: str
    mode: str
    metrics: Dict[str, Optional[float]] = field(default_factory=dict)
    headline: Optional[str] = None
    published: Optional[float] = None
    steps_per_s: Optional[float] = None

    @property
    def delta(self) -> Optional[float]:
        """Measured minus published headline value."""
        measured = None if self.headline is None else self.metrics.get(self.headline)
        if measured is None or self.published is None:
            return None
        return measured - self.published


def _fmt(value: Optional[float], digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def format_table(rows: List[ResultRow]) -> str:
    """The rows as one Markdown table (columns: the union of the rows' metrics, in order)."""
    columns: List[str] = list(dict.fromkeys(k for r in rows for k in r.metrics))
    headline = next((r.headline for r in rows if r.headline), None)
    head = ["model", "variant", "weights", "mode", *columns]
    if headline is not None:
        head += [f"published {headline}", "Δ"]
    head.append("steps/s")
    body = []
    for r in rows:
        cells = [r.model, r.variant or "–", r.weights, r.mode]
        cells += [_fmt(r.metrics.get(c)) for c in columns]
        if headline is not None:
            cells += [_fmt(r.published), _fmt(r.delta, signed=True)]
        body.append(cells + [_fmt(r.steps_per_s, 1)])
    widths = [max(len(x) for x in column) for column in zip(head, *body)]

    def line(cells: List[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule] + [line(c) for c in body])


def weights_member(model: str, weights: Any) -> Optional[WeightsEnum]:
    """The weights member that ``weights`` names for ``model`` (None: not a member's name)."""
    enum = get_model_weights(model)
    if isinstance(weights, WeightsEnum):
        return weights
    if enum is None or not isinstance(weights, str) or not enum.is_member_name(weights):
        return None
    return enum.verify(weights)


def published_result(
    model: str,
    weights: Any,
    metric: str,
    variant: Mapping[str, Any],
    setting: Optional[Mapping[str, Any]] = None,
) -> Optional[Result]:
    """The published ``metric`` of ``weights`` (a member of the model's weights enum or its
    name) for the model built with ``variant``, in ``setting`` (e.g. ``{"streams": 2}``); None
    where nothing is published."""
    member = weights_member(model, weights)
    return None if member is None else member.meta.find(metric, setting, **variant)


def weights_label(model: str, weights: Any, ckpt_path: Optional[str] = None) -> str:
    """How the evaluated parameters are named in the table."""
    if ckpt_path:
        return os.fspath(ckpt_path)
    member = weights_member(model, weights)
    if member is not None:
        return repr(member)
    return "random init" if weights is None else str(weights)
