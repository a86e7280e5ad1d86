"""Optimiser and learning-rate schedule of a task, from two small config dicts.

::

    optimizer: {name: sgd | adamw | adam, lr: 0.1, momentum: 0.9, weight_decay: 5e-5}
    scheduler: {name: cosine | constant | onecycle | step, warmup_fraction: 0.1}

Weight decay applies to the weights of convolutions and linear layers only (parameters with more
than one dimension), not to norms and biases; ``adam`` (the OadTR recipe) is torch's Adam with
L2 decay on every parameter, as that recipe trained. The schedule is per optimiser step: a linear
warm-up from 0 over ``warmup_fraction`` of the steps, then constant or a cosine decay to 0;
``onecycle`` is torch's ``OneCycleLR`` (Smith & Topin 2019: a cosine rise over
``warmup_fraction`` of the steps to the optimiser's lr and a cosine fall far below it, with SGD's
momentum cycled the other way), the fine-tuning schedule of the stride-one skeleton models;
``step`` multiplies the lr by ``gamma`` every ``step_epochs`` epochs (stepped per epoch).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable, List, Mapping

import torch
from torch import nn

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "build_optimizer",
    "build_scheduler",
    "check_optimizer",
    "check_scheduler",
    "lr_factor_schedule",
]

OPTIMIZERS: Dict[str, Dict[str, Any]] = {
    "sgd": {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-5},
    "adamw": {"lr": 1e-3, "weight_decay": 0.05},
    # Adam with L2 weight decay inside the gradient (not decoupled), on every parameter: the
    # OadTR / CoOadTR recipe
    "adam": {"lr": 1e-4, "weight_decay": 1e-4},
}
"""Optimiser names and their settings with defaults."""

SCHEDULERS: Dict[str, Dict[str, Any]] = {
    "cosine": {"warmup_fraction": 0.0},
    "constant": {"warmup_fraction": 0.0},
    "onecycle": {"warmup_fraction": 0.3},
    # lr x gamma every `step_epochs` epochs (stepped per epoch): the OadTR / CoOadTR recipe
    "step": {"warmup_fraction": 0.0, "step_epochs": 1, "gamma": 0.1},
}
"""Schedule names and their settings with defaults."""


def _check(kind: str, config: Mapping[str, Any], choices: Mapping[str, Mapping]) -> Dict:
    """``config`` with defaults filled in; a clear error for an unknown name or setting."""
    name = config.get("name")
    if name not in choices:
        raise ValueError(f"{kind}.name must be one of {sorted(choices)}, got {name!r}")
    unknown = sorted(set(config) - set(choices[name]) - {"name"})
    if unknown:
        raise ValueError(
            f"{kind} {name!r} has no setting(s) {unknown}; it takes {sorted(choices[name])}"
        )
    return {"name": name, **choices[name], **{k: v for k, v in config.items() if k != "name"}}


def check_optimizer(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The optimiser config with defaults (``OPTIMIZERS``); raises on unknown names/settings."""
    return _check("optimizer", config, OPTIMIZERS)


def check_scheduler(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The schedule config with defaults (``SCHEDULERS``); raises on unknown names/settings."""
    checked = _check("scheduler", config, SCHEDULERS)
    if not 0.0 <= float(checked["warmup_fraction"]) < 1.0:
        raise ValueError(f"scheduler.warmup_fraction must be in [0, 1), got {checked}")
    return checked


def build_optimizer(parameters: Iterable[nn.Parameter], config: Mapping[str, Any]):
    """The optimiser of ``config`` over ``parameters`` (decay on >1-D parameters only)."""
    config = check_optimizer(config)
    decay: List[nn.Parameter] = []
    no_decay: List[nn.Parameter] = []
    for parameter in parameters:
        if parameter.requires_grad:
            (decay if parameter.ndim > 1 else no_decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config["name"] == "sgd":
        return torch.optim.SGD(groups, lr=config["lr"], momentum=config["momentum"])
    if config["name"] == "adam":
        every = [p for group in groups for p in group["params"]]
        return torch.optim.Adam(every, lr=config["lr"], weight_decay=config["weight_decay"])
    return torch.optim.AdamW(groups, lr=config["lr"])


def lr_factor_schedule(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    """``step -> lr factor``: linear warm-up over ``warmup`` steps, then constant or a cosine
    decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def build_scheduler(optimizer, config: Mapping[str, Any], total_steps: int) -> Dict[str, Any]:
    """Lightning's ``lr_scheduler`` dict: the schedule of ``config`` stepped per batch."""
    config = check_scheduler(config)
    total = max(int(total_steps), 1)
    if config["name"] == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=int(config["step_epochs"]), gamma=float(config["gamma"])
        )
        return {"scheduler": scheduler, "interval": "epoch", "frequency": 1}
    if config["name"] == "onecycle":
        peak = [group["lr"] for group in optimizer.param_groups]
        fraction = min(max(float(config["warmup_fraction"]), 1.0 / total), 0.99)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peak, total_steps=total, pct_start=fraction
        )
        return {"scheduler": scheduler, "interval": "step", "frequency": 1}
    warmup = int(round(config["warmup_fraction"] * total))
    schedule = lr_factor_schedule(config["name"], warmup, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"scheduler": scheduler, "interval": "step", "frequency": 1}
