"""The model registry: ``register_model``, ``list_models``, ``create_model``, ``get_model_weights``.

A builder is a function ``name(*, weights=None, **kwargs) -> nn.Module`` decorated with
``@register_model(weights=SomeWeights)``, where ``SomeWeights`` is the ``WeightsEnum`` of the
checkpoints published for it. Its family is the sub-package it lives in
(``cozoo.models.video.cox3d`` -> ``"video"``). ``cozoo.models`` imports every module of its
family sub-packages when it is imported, so a new model file registers itself; this module
imports no model file.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Type

from torch import nn

from ._meta import InputSpec
from ._weights import WeightsEnum

__all__ = [
    "ModelInfo",
    "create_model",
    "get_model_builder",
    "get_model_info",
    "get_model_weights",
    "get_weight",
    "list_models",
    "register_model",
]

_PACKAGE = __name__.rsplit(".", 1)[0]  # "cozoo.models"


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model: its ``builder``, the ``weights`` enum of its
    published checkpoints (if any), its ``family`` (``"video"``, ``"skeleton"``,
    ``"detection"``...), its ``task`` and its ``input`` (the default weights' protocol, or the
    one given at registration)."""

    name: str
    builder: Callable[..., nn.Module]
    weights: Optional[Type[WeightsEnum]]
    family: str
    task: str
    input: Optional[InputSpec]

    @property
    def display_name(self) -> str:
        """The published name (``"CoX3D-M"``), else the registered one."""
        return self.weights.DEFAULT.meta.display_name if self.weights is not None else self.name


_MODELS: Dict[str, ModelInfo] = {}


def _family_of(module: str) -> Optional[str]:
    """``"cozoo.models.video.cox3d"`` -> ``"video"``; None outside cozoo's family packages."""
    prefix = _PACKAGE + "."
    if not module.startswith(prefix):
        return None
    parts = module[len(prefix) :].split(".")
    return parts[0] if len(parts) > 1 else None


def register_model(
    weights: Optional[Type[WeightsEnum]] = None,
    *,
    family: Optional[str] = None,
    task: str = "classification",
    input: Optional[InputSpec] = None,
    name: Optional[str] = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under ``name`` (default: its function name).

    ``weights``: its ``WeightsEnum``; ``family``: defaults to the ``cozoo.models`` sub-package
    the builder is defined in (required elsewhere); ``task``: ``"classification"``,
    ``"detection"``...; ``input``: the input protocol when ``weights`` has none (models without
    published checkpoints), so that benchmarks know the model's input shape; ``name``: the
    registered name when the function's cannot be it (``"str"``, a builtin's name)."""

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _MODELS:
            raise ValueError(f"register_model: a model named {key!r} is already registered")
        where = family or _family_of(builder.__module__)
        if where is None:
            raise ValueError(
                f"register_model: {key!r} is defined outside cozoo's family packages "
                f"({builder.__module__}); pass family=..."
            )
        spec = (
            input
            if input is not None
            else (None if weights is None else weights.DEFAULT.transforms)
        )
        _MODELS[key] = ModelInfo(key, builder, weights, where, task, spec)
        return builder

    return register


def list_models(
    pattern: str = "*", *, family: Optional[str] = None, task: Optional[str] = None
) -> List[str]:
    """Registered model names matching a shell-style ``pattern`` (e.g. ``"cox3d_*"``), of
    ``family`` and ``task`` when given, sorted."""
    return sorted(
        name
        for name, info in _MODELS.items()
        if fnmatch.fnmatch(name, pattern)
        and (family is None or info.family == family)
        and (task is None or info.task == task)
    )


def get_model_info(name: str) -> ModelInfo:
    """The registry's ``ModelInfo`` of model ``name``; ``KeyError`` lists the registered ones."""
    if name not in _MODELS:
        raise KeyError(f"Unknown model {name!r}; registered models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    return get_model_info(name).builder


def get_model_weights(name: str) -> Optional[Type[WeightsEnum]]:
    """The ``WeightsEnum`` of the published checkpoints of model ``name`` (None if none)."""
    return get_model_info(name).weights


def get_weight(name: str) -> WeightsEnum:
    """The weights member named ``"<WeightsEnum>.<MEMBER>"`` (e.g. ``"CoX3D_M_Weights.DEFAULT"``)
    among the registered models' enums."""
    enum_name, dot, member = name.partition(".")
    enums = {info.weights.__name__: info.weights for info in _MODELS.values() if info.weights}
    if not dot or enum_name not in enums:
        raise ValueError(
            f"{name!r} names no weights entry; expected '<WeightsEnum>.<MEMBER>' with one of "
            f"{', '.join(sorted(enums))}"
        )
    return enums[enum_name].verify(member)


def create_model(name: str, *, weights=None, **kwargs) -> nn.Module:
    """Build model ``name``; ``weights``: a weights entry or its name, ``"DEFAULT"``, a local
    path (also a ``cozoo.train`` checkpoint) or a URL (see ``cozoo.models.build_model``)."""
    return get_model_builder(name)(weights=weights, **kwargs)
