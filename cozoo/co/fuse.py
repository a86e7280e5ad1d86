"""Inference-time folding of BatchNorm into the convolution before it.

In eval mode a BatchNorm is a per-channel affine map, so ``bn(conv(x))`` is one convolution
with rescaled weights and a bias. Folding removes a module step (and a pass over the frame)
per BatchNorm: in a CoX3D step that is 84 of 538 module steps. The folded network computes
the same function up to float rounding; its state dict has no BatchNorm keys, so fold a copy
for deployment and keep the original for training and checkpoints::

    fast = co.fuse_batch_norm(model.eval())          # a folded copy; `model` is untouched
    fast.forward_step(frame)

The arithmetic is ``torch.nn.utils.fusion.fuse_conv_bn_eval``; this module finds the pairs.
A module that applies a BatchNorm inside its own ``forward`` (not as a child after a conv of a
``Sequential``) can take part by defining ``fold_batch_norm_()``, which is called on the folded
copy (e.g. the skeleton graph units, ``cozoo.models.skeleton.units.GraphUnit``).
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fuse_batch_norm"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)  # the continual convolutions subclass these
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (
        isinstance(conv, _CONVS)
        and isinstance(norm, _NORMS)
        and norm.track_running_stats
        and norm.running_mean is not None
        and norm.num_features == conv.out_channels
        and not conv._forward_hooks
        and not conv._forward_pre_hooks
        and not norm._forward_hooks
        and not norm._forward_pre_hooks
    )


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold every (conv, BatchNorm) pair of adjacent children of ``seq`` in place."""
    items = list(seq._modules.items())
    folded: OrderedDict[str, nn.Module] = OrderedDict()
    count = 0
    i = 0
    while i < len(items):
        name, module = items[i]
        if i + 1 < len(items) and _foldable(module, items[i + 1][1]):
            fused = fuse_conv_bn_eval(module, items[i + 1][1])
            if hasattr(fused, "clean_state"):
                fused.clean_state()  # the deep copy must not share the original's stream
            folded[name] = fused
            count += 1
            i += 2
            continue
        folded[name] = module
        i += 1
    if count:
        seq._modules.clear()
        seq._modules.update(folded)
    return count


def fuse_batch_norm(module: nn.Module, inplace: bool = False) -> nn.Module:
    """Fold each BatchNorm that directly follows a convolution in a (continual or torch)
    ``Sequential`` into that convolution.

    Args:
        module: a network in eval mode (training-mode BatchNorm normalises with batch
            statistics and cannot be folded).
        inplace: modify ``module`` itself instead of a deep copy.

    Returns:
        The folded network (``module`` itself when ``inplace``), with a clean state.

    Raises:
        RuntimeError: if ``module`` is in training mode.
    """
    if module.training:
        raise RuntimeError(
            f"fuse_batch_norm: {type(module).__name__} is in training mode; BatchNorm can only "
            "be folded with its running statistics: call .eval() first"
        )
    target = module if inplace else copy.deepcopy(module)
    for sub in list(target.modules()):
        if isinstance(sub, nn.Sequential):
            _fold_sequential(sub)
    for sub in list(target.modules()):
        fold_own = getattr(sub, "fold_batch_norm_", None)
        if callable(fold_own):
            fold_own()
    if hasattr(target, "clean_state"):
        target.clean_state()
    return target
