"""FLOPs of continual modules per mode, counted by ptflops. The unit is the MAC
(multiply-accumulate; ptflops' "Mac"; 1 MAC = 2 FLOPs).

Importing ``cozoo.co`` registers the continual modules with ptflops (when it is installed), so
``ptflops.get_model_complexity_info`` counts whatever the module's call mode runs: a clip in
``forward`` mode, one step in ``forward_step`` mode. Counting follows ptflops' module-hook
convention: each module that computes counts itself, once. ptflops >= 0.7 also counts some
``torch`` functions when they are called (``count_functional``, on by default); the steps of the
continual modules call none of those (nor do the clips of convolutions, pools and containers; a
clip of attention runs torch's, which ptflops counts so for ``torch.nn`` too), so a step's count
is the same with that option on or off (this module turns it off). One step of a convolution
counts exactly the MACs of one output frame; a step of an attention module counts its
projections also while it warms up; a reduce of branches counts nothing of its own.

``complexity(module, clip_shape)`` returns params and MACs for a clip and for one step::

    >>> complexity(net, (1, 3, 16, 160, 160))
    Complexity(params=..., clip_macs=..., step_macs=..., step_macs_mean=..., unit='MACs')
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Dict, Sequence

import torch
from torch import Tensor, nn

from .convert import on_stepping_class
from .modes import call_mode
from .module import CoModule

__all__ = ["Complexity", "complexity", "register_ptflops"]

_registered = False
# While True, ptflops counts every forward_stepping module (wrapped BN, ReLU, ...) twice per
# step, as continual-inference's wrappers did: the convention of the published per-step figures.
_count_wrapped_twice = False

CONVENTIONS = ("cozoo", "continual-inference")


def _skip_empty(hook: Callable) -> Callable:
    """A ptflops hook that counts nothing for a step without output."""

    def counting(module: nn.Module, inputs: tuple, output) -> None:
        if output is None or not inputs or inputs[0] is None:
            return
        hook(module, inputs, output)

    return counting


def _linear_hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
    # Features may sit on any dim (channel_dim): count per input element, not per last dim.
    macs = inputs[0].numel() * module.out_features
    if module.bias is not None:
        macs += output.numel()
    module.__flops__ += int(macs)


def _recurrent_hook(ptflops_rnn_hook: Callable) -> Callable:
    def counting(module: nn.Module, inputs: tuple, output) -> None:
        x = inputs[0]
        # ptflops expects (B, T, C); ours are (B, C, T) clips and (B, C) steps.
        sequence = x.transpose(1, 2) if x.dim() == 3 else x.unsqueeze(1)
        ptflops_rnn_hook(module, (sequence,), output)

    return counting


def _attention_hook(module: nn.Module, inputs: tuple, output) -> None:
    """The analytic count of what the call computed: a step without output (the warm-up)
    still projects its token, so it counts ``warmup_step_flops``, not 0."""
    if not inputs or inputs[0] is None:
        return
    if output is None:
        module.__flops__ += int(module.warmup_step_flops())
    else:
        module.__flops__ += int(module.flops())


def _hooks() -> Dict[type, Callable]:
    from ptflops import pytorch_ops as ops

    from . import conv, linear, pooling, rnn

    hooks: Dict[type, Callable] = {}
    for name in ("Conv1d", "Conv2d", "Conv3d"):
        hooks[getattr(conv, name)] = _skip_empty(ops.conv_flops_counter_hook)
    for name in pooling.__all__:
        hooks[getattr(pooling, name)] = _skip_empty(ops.pool_flops_counter_hook)
    hooks[linear.Linear] = _skip_empty(_linear_hook)
    for name in ("RNN", "GRU", "LSTM"):
        hooks[getattr(rnn, name)] = _skip_empty(_recurrent_hook(ops.rnn_flops_counter_hook))
    try:
        from . import attention
    except ImportError:  # pragma: no cover - attention is part of the package
        attention = None
    if attention is not None:
        for name in ("SingleOutputMultiheadAttention", "RetroactiveMultiheadAttention"):
            if hasattr(attention, name):
                hooks[getattr(attention, name)] = _attention_hook
    return hooks


def register_ptflops() -> bool:
    """Register the continual modules with ptflops; False if ptflops is not installed."""
    global _registered
    if _registered:
        return True
    try:
        from ptflops import pytorch_ops
    except ImportError:
        return False
    pytorch_ops.MODULES_MAPPING.update(_hooks())
    on_stepping_class(register_stepping_class)  # the existing classes now, new ones when made
    _registered = True
    return True


def register_stepping_class(stepping: type, kind: type) -> None:
    """Count a ``forward_stepping`` class as ptflops counts the torch class it extends."""
    try:
        from ptflops import pytorch_ops
    except ImportError:
        return
    hook = pytorch_ops.MODULES_MAPPING.get(kind)
    if hook is None:
        return
    counted = _skip_empty(hook)

    def counting(module: nn.Module, inputs: tuple, output) -> None:
        counted(module, inputs, output)
        if _count_wrapped_twice:
            counted(module, inputs, output)

    pytorch_ops.MODULES_MAPPING[stepping] = counting


@dataclass(frozen=True)
class Complexity:
    """Parameters and multiply-accumulates of a continual module.

    ``clip_macs``: one ``forward`` over a clip; ``step_macs``: the costliest ``forward_step`` of a
    stride period after the warm-up; ``step_macs_mean``: their mean over that period.
    """

    params: int
    clip_macs: int
    step_macs: int
    step_macs_mean: float
    unit: str = "MACs"


def _count(module: nn.Module, example: Tensor, mode: str) -> int:
    from ptflops import get_model_complexity_info

    with call_mode(mode):
        macs, _ = get_model_complexity_info(
            module,
            tuple(example.shape[1:]),
            input_constructor=lambda _: example,
            as_strings=False,
            print_per_layer_stat=False,
            backend="pytorch",
            backend_specific_config={"count_functional": False},
            ost=io.StringIO(),
        )
    if macs is None:
        raise RuntimeError(f"ptflops could not count {type(module).__name__} in {mode} mode")
    return int(macs)


def complexity(
    module: CoModule, clip_shape: Sequence[int], convention: str = "cozoo"
) -> Complexity:
    """Params and MACs (per sample) of ``module`` for a clip ``(B, C, T, *S)`` and for a step.

    ``convention="cozoo"`` counts what a step computes. ``"continual-inference"`` counts each
    temporally local torch layer wrapped for stepping (BatchNorm, ReLU, ...) twice per step, as
    the reference library's wrappers made ptflops do: the convention behind the published
    per-step figures of the model zoo (0.17 / 0.33 / 1.25 / 6.90 / 5.68 GMACs), kept so that
    they can be reproduced. Clip counts are the same under both.

    The module's state, call mode and train/eval mode are left as they were.
    """
    global _count_wrapped_twice
    if convention not in CONVENTIONS:
        raise ValueError(f"complexity: convention must be one of {CONVENTIONS}, got {convention!r}")
    if not register_ptflops():
        raise ImportError("cozoo.co.flops needs ptflops: pip install 'cozoo[flops]'")
    clip_shape = tuple(clip_shape)
    param = next(module.parameters(), None)
    kwargs = {} if param is None else {"dtype": param.dtype, "device": param.device}
    clip = torch.zeros(clip_shape, **kwargs)
    step = clip[:, :, 0]
    was_training, saved = module.training, module.get_state()
    try:
        with torch.no_grad():
            clip_macs = _count(module, clip, "forward")
            module.clean_state()
            warm = max(int(module.delay), 0)
            if warm:
                module.forward_steps(clip[:, :, :1].expand(*clip_shape[:2], warm, *clip_shape[3:]))
            period = max(int(_temporal_stride(module)), 1)
            _count_wrapped_twice = convention == "continual-inference"
            per_step = [_count(module, step, "forward_step") for _ in range(period)]
    finally:
        _count_wrapped_twice = False
        module.set_state(saved)
        module.train(was_training)
    params = sum(p.numel() for p in module.parameters())
    return Complexity(params, clip_macs, max(per_step), sum(per_step) / len(per_step))


def _temporal_stride(module: CoModule) -> int:
    stride = module.stride
    return stride[0] if isinstance(stride, (tuple, list)) else int(stride)
