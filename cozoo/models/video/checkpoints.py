"""Checkpoint layouts of the video models' source code bases, mapped onto cozoo's logical keys.

Formats (``ContinualVideoNet.source_formats``)::

    pytorchvideo   torch hub / model zoo ``.pyth``: ``{"model_state": {"blocks.0.conv...": t}}``
    pyslowfast     PySlowFast ``.pyth``:           ``{"model_state": {"s1.pathway0_stem...": t}}``
    caffe2         PySlowFast's Caffe2 ``.pkl``:   ``{"blobs": {"conv1_w": ndarray, ...}}``
    cozoo          our own keys (long or flattened, as ``co.flat_state_dict`` saves them)

The rules rename a block's keys; each model file adds the rules of its stem and head.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, Mapping, Tuple

import torch
from torch import Tensor

from .._keys import KeyRules, Replacement, prefixed_rename

__all__ = [
    "CAFFE2_RULES",
    "CAFFE2_SKIPPED",
    "PYSLOWFAST_BLOCK_RULES",
    "PYSLOWFAST_STAGE_RULE",
    "PYTORCHVIDEO_BLOCK_RULES",
    "detect_source_format",
    "identity_batch_norm",
    "reshape_blob",
]

#: Inside a residual block: pytorchvideo (``ResBlock``) names -> logical names.
PYTORCHVIDEO_BLOCK_RULES = KeyRules(
    [
        (r"branch1_conv\.(.+)", r"shortcut.conv.\1"),
        (r"branch1_norm\.(.+)", r"shortcut.norm.\1"),
        (r"branch2\.conv_([abc])\.(.+)", r"branch.conv_\1.\2"),
        (r"branch2\.norm_b\.0\.(.+)", r"branch.norm_b.\1"),  # X3D: norm_b = (BN, SE)
        (r"branch2\.norm_b\.1\.block\.0\.(.+)", r"branch.se.gate.fc1.\1"),
        (r"branch2\.norm_b\.1\.block\.2\.(.+)", r"branch.se.gate.fc2.\1"),
        (r"branch2\.norm_([abc])\.(.+)", r"branch.norm_\1.\2"),
    ]
)

#: Inside a residual block: PySlowFast (``ResBlock`` / ``X3DTransform``) names -> logical names.
PYSLOWFAST_BLOCK_RULES = KeyRules(
    [
        (r"branch1\.(.+)", r"shortcut.conv.\1"),
        (r"branch1_bn\.(.+)", r"shortcut.norm.\1"),
        (r"branch2\.([abc])\.(.+)", r"branch.conv_\1.\2"),
        (r"branch2\.([abc])_bn\.(.+)", r"branch.norm_\1.\2"),
        (r"branch2\.se\.(fc[12])\.(.+)", r"branch.se.gate.\1.\2"),
    ]
)

#: PySlowFast stage blocks ``s{n}.pathway0_res{j}.`` (n = 2..5) -> ``res{n}.block{j}.residual.``
PYSLOWFAST_STAGE_RULE: Tuple[str, Replacement] = (
    r"s([2-5])\.pathway0_res(\d+)\.(.+)",
    lambda m: prefixed_rename(f"res{m[1]}.block{m[2]}.residual.", PYSLOWFAST_BLOCK_RULES, m[3]),
)

_CAFFE2_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}

#: Caffe2 blob names (PySlowFast ResNet ``.pkl``) -> PySlowFast names. ``riv`` is read as the
#: running variance, as PySlowFast's own converter does.
CAFFE2_RULES = KeyRules(
    [
        (r"conv1_w", "s1.pathway0_stem.conv.weight"),
        (r"res_conv1_bn_(s|b|rm|riv)", lambda m: f"s1.pathway0_stem.bn.{_CAFFE2_BN[m[1]]}"),
        (r"res([2-5])_(\d+)_branch1_w", r"s\1.pathway0_res\2.branch1.weight"),
        (
            r"res([2-5])_(\d+)_branch1_bn_(s|b|rm|riv)",
            lambda m: f"s{m[1]}.pathway0_res{m[2]}.branch1_bn.{_CAFFE2_BN[m[3]]}",
        ),
        (r"res([2-5])_(\d+)_branch2([abc])_w", r"s\1.pathway0_res\2.branch2.\3.weight"),
        (
            r"res([2-5])_(\d+)_branch2([abc])_bn_(s|b|rm|riv)",
            lambda m: f"s{m[1]}.pathway0_res{m[2]}.branch2.{m[3]}_bn.{_CAFFE2_BN[m[4]]}",
        ),
        (r"pred_w", "head.projection.weight"),
        (r"pred_b", "head.projection.bias"),
    ]
)

#: Caffe2 blobs that are optimiser / schedule bookkeeping, not weights (skipped, documented).
CAFFE2_SKIPPED = re.compile(r".*_momentum|lr|iter|model_iter")

_CAFFE2_KEY = re.compile(r"conv1_w|pred_[wb]|res_conv1_bn_.+|res\d+_\d+_branch.+")


def detect_source_format(state: Mapping[str, Any]) -> str:
    """The layout of a (unwrapped) state dict: ``"caffe2"`` for Caffe2 blob names (``conv1_w``,
    ``res2_0_branch2a_w``...), ``"pyslowfast"`` for ``s1.``... keys, ``"pytorchvideo"`` for
    ``blocks.``... keys, else ``"cozoo"``."""
    keys = list(state)
    if any(_CAFFE2_KEY.fullmatch(k) for k in keys):
        return "caffe2"
    if any(k.startswith("s1.") for k in keys):
        return "pyslowfast"
    if any(k.startswith("blocks.") for k in keys):
        return "pytorchvideo"
    return "cozoo"


def reshape_blob(tensor: Tensor, shape: torch.Size) -> Tensor:
    """A 1-D/2-D Caffe2 blob reshaped to the target's higher-rank shape (same element count)."""
    if tensor.dim() <= 2 < len(shape) and tensor.numel() == shape.numel():
        return tensor.reshape(shape)
    return tensor


def identity_batch_norm(channels: int, eps: float = 1e-5) -> Dict[str, Tensor]:
    """BatchNorm entries that make it the identity in eval mode: weight 1, bias 0, mean 0,
    variance ``1 - eps`` (so ``sqrt(var + eps) = 1``), ``num_batches_tracked`` 0."""
    return OrderedDict(
        weight=torch.ones(channels),
        bias=torch.zeros(channels),
        running_mean=torch.zeros(channels),
        running_var=torch.full((channels,), 1.0 - eps),
        num_batches_tracked=torch.tensor(0, dtype=torch.long),
    )
