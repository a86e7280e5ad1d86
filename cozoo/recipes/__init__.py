"""The Hydra config tree of ``python -m cozoo.train`` / ``python -m cozoo.evaluate``.

Shipped inside the package (``pkg://cozoo.recipes``), so it works from an installed wheel::

    train.yaml evaluate.yaml      primary configs
    recipe/   one per published result (``# @package _global_``): cox3d_m, cox3d_m16, ...
    model/    the LightningModule (``cozoo.tasks.VideoClassifier``) per architecture
    data/     LightningDataModules (``cozoo.data``)
    trainer/  ``lightning.pytorch.Trainer`` settings (default, ddp, debug)
    logger/   csv (default), tensorboard, wandb (offline); combine: ``logger=[csv,tensorboard]``

A recipe holds two input settings: ``published`` (the protocol of the published result, used
when ``data.root`` is set) and ``sample`` (small, for the generated sample used without
``data.root``). Config values read them through the ``${cozoo.protocol:KEY}`` resolver:
``sample.KEY`` (falling back to ``published.KEY``) without ``data.root``, else ``published.KEY``.
Any value can still be overridden on the command line (``data.crop=128``, ``sample.crop=80``).

Compose it from Python with Hydra's compose API::

    from hydra import compose, initialize_config_module
    with initialize_config_module("cozoo.recipes", version_base="1.3"):
        cfg = compose("train", overrides=["recipe=cox3d_m"])
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["CONFIG_MODULE", "protocol_value", "register_resolvers"]

CONFIG_MODULE = "cozoo.recipes"
"""The Python module that holds the config tree (``initialize_config_module(CONFIG_MODULE)``)."""


def protocol_value(key: str, *, _root_: DictConfig) -> Any:
    """``${cozoo.protocol:KEY}``: ``published.KEY`` when ``data.root`` is set; else
    ``sample.KEY``, or ``published.KEY`` where the sample does not set it."""
    root = OmegaConf.select(_root_, "data.root", default=None)
    sample = OmegaConf.select(_root_, "sample", default=None)
    if not root and sample is not None and key in sample:
        return sample[key]
    published = OmegaConf.select(_root_, "published", default=None)
    if published is None or key not in published:
        where = "published" if root else "sample or published"
        raise KeyError(f"${{cozoo.protocol:{key}}}: the recipe sets no {where}.{key}")
    return published[key]


def register_resolvers() -> None:
    """Register ``cozoo.protocol`` with OmegaConf (idempotent)."""
    if not OmegaConf.has_resolver("cozoo.protocol"):
        OmegaConf.register_new_resolver("cozoo.protocol", protocol_value)


register_resolvers()
