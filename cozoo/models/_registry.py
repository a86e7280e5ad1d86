"""The model registry: ``register_model``, ``list_models``, ``create_model``, ``get_model_weights``.

A builder is a function ``name(*, weights=None, **kwargs) -> nn.Module`` decorated with
``@register_model(weights=SomeWeights)``, where ``SomeWeights`` is the ``WeightsEnum`` of the
checkpoints published for it. ``create_model(name, weights="DEFAULT")`` builds and loads.
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Dict, List, Optional, Type

from torch import nn

__all__ = [
    "create_model",
    "get_model_builder",
    "get_model_weights",
    "list_models",
    "register_model",
]

_BUILDERS: Dict[str, Callable[..., nn.Module]] = {}
_WEIGHTS: Dict[str, Optional[type]] = {}


def register_model(weights: Optional[Type] = None) -> Callable:
    """Register a builder under its function name; ``weights`` is its ``WeightsEnum`` (if any)."""

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _BUILDERS:
            raise ValueError(f"register_model: a model named {name!r} is already registered")
        _BUILDERS[name] = builder
        _WEIGHTS[name] = weights
        return builder

    return register


def list_models(pattern: str = "*") -> List[str]:
    """Registered model names matching a shell-style ``pattern`` (e.g. ``"cox3d_*"``), sorted."""
    _load_families()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, pattern))


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    _load_families()
    if name not in _BUILDERS:
        raise KeyError(f"Unknown model {name!r}; registered models: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name]


def get_model_weights(name: str) -> Optional[type]:
    """The ``WeightsEnum`` of the published checkpoints of model ``name`` (None if none)."""
    get_model_builder(name)
    return _WEIGHTS[name]


def create_model(name: str, *, weights=None, **kwargs) -> nn.Module:
    """Build model ``name``; ``weights``: a weights entry or its name, ``"DEFAULT"``, a local
    path or a URL (see ``cozoo.models.load_weights``)."""
    return get_model_builder(name)(weights=weights, **kwargs)


def _load_families() -> None:
    """Import the model family modules, which register their builders."""
    from . import coi3d, coslow, cox3d  # noqa: F401
