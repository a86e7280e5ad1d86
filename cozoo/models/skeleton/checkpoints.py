"""Key layouts of skeleton checkpoints and their mapping onto ``CoSkeletonNet``.

Three layouts (``source_format``):

- ``"continual_skeletons"``: the published files of Hedegaard et al. (2023) (``.pt`` state
  dicts and Lightning ``.ckpt``), keyed like the regular networks (``regular.py``)::

      layers.layer5.gcn.g_conv.0.weight   layers.layer5.tcn.t_conv.weight
      layers.layer5.residual.t_conv.weight   data_bn.weight   fc.weight

- ``"continual_skeletons_co"``: the same weights saved from the original continual modules,
  whose blocks 2-10 nest the unit and temporal conv under ``0.1`` and the shortcut under
  ``0.0``: ``layers.layer5.0.1.gcn.*``, ``layers.layer5.0.0.residual.*``;
- ``"cozoo"``: this package's own keys (``layers.layer5.block.main.gcn.*``,
  ``layers.layer5.block.residual[.0].t_conv.*``).

Only names change, never shapes. The fixed graphs ``A`` stored in a file must equal the ones
the model builds (a file made for another skeleton or partition is refused).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, Mapping

import torch
from torch import nn

from .._keys import unwrap

__all__ = [
    "SOURCE_FORMATS",
    "convert",
    "detect_source_format",
    "from_original_continual_key",
    "to_published_key",
    "to_published_keys",
]

SOURCE_FORMATS = ("cozoo", "continual_skeletons", "continual_skeletons_co")

_MAIN = re.compile(r"^(layers\.layer\d+)\.block\.main\.")
_SHORTCUT = re.compile(r"^(layers\.layer\d+)\.block\.residual\.(?:\d+\.)*")
_ORIGINAL_MAIN = re.compile(r"^(layers\.layer\d+)\.0\.1\.")
_ORIGINAL_SHORTCUT = re.compile(r"^(layers\.layer\d+)\.0\.0\.residual\.")


def to_published_key(key: str) -> str:
    """A ``CoSkeletonNet`` key in the published (regular network) layout."""
    return _SHORTCUT.sub(r"\1.residual.", _MAIN.sub(r"\1.", key))


def to_published_keys(state: Mapping[str, Any]) -> Dict[str, Any]:
    """A ``CoSkeletonNet`` state dict with the published keys (loads into the regular net)."""
    return OrderedDict((to_published_key(k), v) for k, v in state.items())


def from_original_continual_key(key: str) -> str:
    """A key of the original continual modules in the published layout."""
    return _ORIGINAL_SHORTCUT.sub(r"\1.residual.", _ORIGINAL_MAIN.sub(r"\1.", key))


def detect_source_format(state: Mapping[str, Any]) -> str:
    """``"continual_skeletons_co"`` when blocks nest under ``0.0``/``0.1``,
    ``"continual_skeletons"`` for the regular layout, else ``"cozoo"``."""
    keys = list(unwrap(state))
    if any(_ORIGINAL_MAIN.match(k) or _ORIGINAL_SHORTCUT.match(k) for k in keys):
        return "continual_skeletons_co"
    if any(re.match(r"^layers\.layer\d+\.(gcn|tcn|residual)\.", k) for k in keys):
        return "continual_skeletons"
    return "cozoo"


def _check_graphs(model: nn.Module, converted: Mapping[str, Any]) -> None:
    """Fixed graphs (``A`` buffers; the attention units' ``A`` is a trainable parameter) of the
    file must be the model's."""
    own = model.state_dict(keep_vars=True)
    wrong = []
    for key, value in converted.items():
        param = own.get(key)
        if not key.endswith(".A") or param is None or isinstance(param, nn.Parameter):
            continue
        if not isinstance(value, torch.Tensor) or value.shape != param.shape:
            continue  # the strict load reports the shape
        if not torch.allclose(value.to(param.dtype), param.detach(), atol=1e-6):
            wrong.append(key)
    if wrong:
        raise ValueError(
            f"the checkpoint's graph A differs from the {getattr(model, 'graph', '?')!r} graph "
            f"this model builds at {', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''} "
            "(a checkpoint for another skeleton or partition?)"
        )


def convert(model: nn.Module, state: Mapping[str, Any], source_format: str) -> Dict[str, Any]:
    """``state`` (a state dict or a checkpoint holding one) with ``model``'s keys.

    Every source key is renamed or, when the layout does not know it, passed through as it is,
    so that a strict load names it; keys the source lacks are not invented."""
    if source_format not in SOURCE_FORMATS:
        raise ValueError(
            f"{type(model).__name__}.convert_state_dict: unknown source_format "
            f"{source_format!r}; expected one of {SOURCE_FORMATS}"
        )
    state = unwrap(state)
    if source_format == "cozoo":
        converted: Dict[str, Any] = OrderedDict(state.items())
    else:
        own_by_published = {to_published_key(k): k for k in model.state_dict()}
        converted = OrderedDict()
        for key, value in state.items():
            published = key
            if source_format == "continual_skeletons_co":
                published = from_original_continual_key(key)
            target = own_by_published.get(published, key)
            if target in converted:
                raise ValueError(f"two {source_format} keys map to {target!r}")
            converted[target] = value
    _check_graphs(model, converted)
    return converted
