"""torch.hub entry points of cozoo: every model of the registry, by its registered name.

    import torch
    torch.hub.list("<owner>/cozoo")                                  # the entry points
    model = torch.hub.load("<owner>/cozoo", "cox3d_m", weights="DEFAULT")
    model = torch.hub.load("<owner>/cozoo", "coslow", weights="/data/SLOW_8x8_R50.pyth")

The builders are generated from ``cozoo.models.list_models()``, so a model registered with
``@register_model`` is an entry point without an edit here. ``list_models``, ``create_model``
and ``get_model_weights`` are exported as well.
"""

from typing import List

from cozoo.models import create_model, get_model_weights, list_models
from cozoo.models import get_model_builder as _get_model_builder

dependencies = ["torch"]


def _export_builders() -> List[str]:
    """Bind every registered builder to a module-level name; return the names."""
    names = list_models()
    for name in names:
        globals()[name] = _get_model_builder(name)
    return names


__all__ = ["create_model", "dependencies", "get_model_weights", "list_models", *_export_builders()]
