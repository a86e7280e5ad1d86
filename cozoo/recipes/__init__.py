"""The Hydra config tree of ``python -m cozoo.train`` / ``python -m cozoo.evaluate``.

Shipped inside the package (``pkg://cozoo.recipes``), so it works from an installed wheel::

    train.yaml evaluate.yaml      primary configs
    recipe/   one per published result (``# @package _global_``): cox3d_m, cox3d_m16, ...
    model/    the network per family (``video``): ``cozoo.models.create_model(**model)``
    task/     the LightningModule (``classification``: ``cozoo.tasks.ClassificationTask``)
    data/     LightningDataModules (``cozoo.data``)
    sample/   the settings used with the generated sample of a dataset (no ``data.root``)
    trainer/  ``lightning.pytorch.Trainer`` settings (default, ddp, debug)
    logger/   csv (default), tensorboard, wandb (offline); combine: ``logger=[csv,tensorboard]``

A ``recipes/`` folder in the working directory is searched too (after the shipped tree), so
``python -m cozoo.train recipe=my_experiment`` finds ``./recipes/recipe/my_experiment.yaml``.

A run has two input settings: ``published`` (set by the recipe: the protocol of the published
result, used when ``data.root`` is set) and ``sample`` (small, for the generated sample used
without ``data.root``). Config values read them through the ``${cozoo.protocol:KEY}`` resolver:
``sample.KEY`` (falling back to ``published.KEY``) without ``data.root``, else ``published.KEY``;
where ``published`` does not set a key, the meta of the weights entry it names
(``published.weights: CoX3D_M_Weights.KINETICS400_PYSLOWFAST``) gives the input protocol
(``frames``, ``sampling_rate``, ``short_side``, ``crop``, ``mean``, ``std``...) and
``num_classes``, so the recipe does not repeat them. Any value can still be overridden on the
command line (``data.crop=128``, ``sample.crop=80``, ``published.frames=8``).

Compose it from Python with Hydra's compose API::

    from hydra import compose, initialize_config_module
    with initialize_config_module("cozoo.recipes", version_base="1.3"):
        cfg = compose("train", overrides=["recipe=cox3d_m"])
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["CONFIG_MODULE", "meta_value", "protocol_value", "register_resolvers"]

CONFIG_MODULE = "cozoo.recipes"
"""The Python module that holds the config tree (``initialize_config_module(CONFIG_MODULE)``)."""


_MISSING = object()

# ``hydra.searchpath`` names ``./recipes`` for users' own recipes; most working directories have
# none, which is not worth a warning on every run.
warnings.filterwarnings(
    "ignore", message=r"provider=hydra\.searchpath in main, path=recipes is not available"
)


def meta_value(weights: str, key: str) -> Any:
    """``key`` of the weights entry named ``weights`` (``"CoX3D_M_Weights.DEFAULT"``): a field
    of its input protocol (``meta.input``) or of its meta (``num_classes``...); tuples become
    ``ListConfig`` s (a resolved config stores them). Raises ``KeyError`` when neither has it."""
    from cozoo.models import get_weight

    meta = get_weight(weights).meta
    for source in (meta.input, meta):
        fields = {f.name for f in dataclasses.fields(source)}
        if key in fields:
            value = getattr(source, key)
            return OmegaConf.create(list(value)) if isinstance(value, tuple) else value
    raise KeyError(f"the meta of {weights} has no {key!r}")


def protocol_value(key: str, *, _root_: DictConfig) -> Any:
    """``${cozoo.protocol:KEY}``: ``published.KEY`` when ``data.root`` is set; else
    ``sample.KEY``, or ``published.KEY`` where the sample does not set it (or sets ``???``);
    where ``published`` does not set it either, ``KEY`` of the meta of the entry
    ``published.weights`` names."""
    root = OmegaConf.select(_root_, "data.root", default=None)
    sample = OmegaConf.select(_root_, "sample", default=None)
    if not root and sample is not None and key in sample and not OmegaConf.is_missing(sample, key):
        return sample[key]
    published = OmegaConf.select(_root_, "published", default=None)
    if published is not None and key in published:
        return published[key]
    weights = None if published is None else published.get("weights")
    value = _MISSING
    if weights:
        try:
            value = meta_value(str(weights), key)
        except KeyError:
            pass
    if value is _MISSING:
        where = "published" if root else "sample or published"
        named = f" nor the meta of {weights}" if weights else ""
        raise KeyError(f"${{cozoo.protocol:{key}}}: the recipe sets no {where}.{key}{named}")
    return value


def register_resolvers() -> None:
    """Register ``cozoo.protocol`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("cozoo.protocol"):
        OmegaConf.register_new_resolver("cozoo.protocol", protocol_value)


register_resolvers()
