"""Converters from ``torch.nn`` to continual modules: ``continual`` and ``forward_stepping``.

``continual(module)`` returns a continual module computing the same function with the same
weights and ``state_dict`` keys, and never mutates its argument. Temporally local modules
(activations, normalisations in eval mode, dropout) are wrapped by ``forward_stepping``, which
keeps the torch class (``isinstance(m, nn.ReLU)`` still holds) and adds the step modes.

This module imports the layer modules it converts to; the containers, which convert their
children, import it and register ``nn.Sequential``'s conversion themselves, and the FLOPs
counter subscribes to new ``forward_stepping`` classes (``on_stepping_class``), so no module
that this one imports imports it back.
"""

from __future__ import annotations

import copy
import types
import warnings
import weakref
from typing import Callable, Dict, List, Optional, Type

import torch
from torch import Tensor, nn

from . import conv, linear, pooling, rnn
from .checks import check_step_input
from .closure import Lambda
from .module import CoModule, Stateless

__all__ = ["continual", "forward_stepping", "on_stepping_class", "register", "TEMPORALLY_LOCAL"]

#: torch.nn classes whose output frame t depends on input frame t only (with running
#: statistics for the norms, i.e. in eval mode for BatchNorm).
TEMPORALLY_LOCAL = (
    nn.Threshold, nn.ReLU, nn.RReLU, nn.Hardtanh, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid, nn.Tanh,
    nn.SiLU, nn.Hardswish, nn.ELU, nn.CELU, nn.SELU, nn.GLU, nn.GELU, nn.Hardshrink,
    nn.LeakyReLU, nn.LogSigmoid, nn.Softplus, nn.Softshrink, nn.PReLU, nn.Softsign,
    nn.Tanhshrink, nn.Softmin, nn.Softmax, nn.Softmax2d, nn.LogSoftmax, nn.Mish,
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.FeatureAlphaDropout, nn.Identity,
)  # fmt: skip

_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)

Conversion = Callable[[nn.Module], CoModule]

#: Conversions registered by users (``register``); they take precedence over the built-in ones.
_CONVERSIONS: Dict[Type[nn.Module], Conversion] = {}

#: torch class -> ``build_from`` of its continual class. ``nn.Sequential`` is added by
#: ``cozoo.co.container.sequential`` (``register_built_in``), which imports this module.
_BUILT_IN: Dict[Type[nn.Module], Conversion] = {
    **{getattr(nn, f"Conv{d}d"): getattr(conv, f"Conv{d}d").build_from for d in (1, 2, 3)},
    **{getattr(nn, f"AvgPool{d}d"): getattr(pooling, f"AvgPool{d}d").build_from for d in (1, 2, 3)},
    **{getattr(nn, f"MaxPool{d}d"): getattr(pooling, f"MaxPool{d}d").build_from for d in (1, 2, 3)},
    nn.Linear: linear.Linear.build_from,
    nn.RNN: rnn.RNN.build_from,
    nn.LSTM: rnn.LSTM.build_from,
    nn.GRU: rnn.GRU.build_from,
}

_NEEDS_ARGUMENTS = {
    nn.AdaptiveAvgPool2d: "co.AdaptiveAvgPool2d.build_from(module, kernel_size=...)",
    nn.AdaptiveAvgPool3d: "co.AdaptiveAvgPool3d.build_from(module, kernel_size=...)",
    nn.AdaptiveMaxPool2d: "co.AdaptiveMaxPool2d.build_from(module, kernel_size=...)",
    nn.AdaptiveMaxPool3d: "co.AdaptiveMaxPool3d.build_from(module, kernel_size=...)",
    nn.TransformerEncoder: "co.TransformerEncoder.build_from(module, sequence_len=...)",
}


def register(torch_class: Type[nn.Module], convert: Callable[[nn.Module], CoModule]) -> None:
    """Teach ``continual`` to convert ``torch_class``: ``convert`` is a continual class with a
    ``build_from`` classmethod, or any function ``torch_module -> continual module``."""
    build = getattr(convert, "build_from", convert)
    if not callable(build):
        raise TypeError(f"register: {convert!r} is neither callable nor has a build_from")
    _CONVERSIONS[torch_class] = build


def register_built_in(torch_class: Type[nn.Module], build: Conversion) -> None:
    """A built-in conversion defined by a module that imports this one (the containers)."""
    _BUILT_IN[torch_class] = build


def _conversion(kind: Type[nn.Module]) -> Optional[Conversion]:
    if kind in _CONVERSIONS:
        return _CONVERSIONS[kind]
    return _BUILT_IN.get(kind)


def _check_not_over_time(module: nn.Module) -> None:
    """Modules that mix values along a dim must not mix along time (dim 2 of a clip)."""
    dim = getattr(module, "dim", None)
    if isinstance(module, (nn.Softmax, nn.Softmin, nn.LogSoftmax, nn.GLU)) and dim == 2:
        raise TypeError(
            f"continual: {type(module).__name__}(dim=2) mixes values along time (dim 2 of a "
            "(B, C, T, ...) clip), so one step cannot compute it"
        )


def continual(module: nn.Module) -> CoModule:
    """A continual version of ``module`` (a copy: the argument is left untouched).

    Raises a TypeError naming the class when no conversion is known; register one with
    ``cozoo.co.convert.register(TorchClass, CoClass)``.
    """
    if isinstance(module, CoModule):
        return module
    kind = type(module)
    build = _conversion(kind)
    if build is not None:
        return build(module)
    if kind is nn.GroupNorm:
        raise TypeError(
            "continual: GroupNorm normalises over time too (its statistics cover all frames of "
            "a clip), so one step cannot compute it; wrap it with co.forward_stepping if "
            "per-frame statistics are what you want"
        )
    if kind in _NEEDS_ARGUMENTS:
        raise TypeError(
            f"continual: {kind.__name__} needs arguments that the torch module does not carry; "
            f"use {_NEEDS_ARGUMENTS[kind]}"
        )
    if kind in TEMPORALLY_LOCAL:
        _check_not_over_time(module)
        return forward_stepping(copy.deepcopy(module))
    if kind in _INSTANCE_NORMS:
        missing = [f for f in ("affine", "track_running_stats") if not getattr(module, f)]
        if missing:
            raise TypeError(
                f"continual: {kind.__name__} normalises over time unless it uses running "
                f"statistics; it needs {' and '.join(f'{f}=True' for f in missing)} (or wrap it "
                "with co.forward_stepping if per-frame statistics are what you want)"
            )
        return forward_stepping(copy.deepcopy(module))
    if isinstance(module, types.FunctionType) or (
        callable(module) and not isinstance(module, nn.Module)
    ):
        return Lambda(module)
    raise TypeError(
        f"continual: no continual conversion is registered for {kind.__name__}. Register one "
        "with cozoo.co.convert.register(TorchClass, CoClass), or, if the module is temporally "
        "local (output frame t depends on input frame t only), wrap it with co.forward_stepping."
    )


# --------------------------------------------------------------------------------------------
# forward_stepping
# --------------------------------------------------------------------------------------------
class _ForwardStepping(Stateless):
    """Step modes for a temporally local torch module: a step is ``forward`` on a 1-frame clip."""

    _co_time_dim: int = 2

    def _frame(self, x: Tensor) -> Tensor:
        if self.training and isinstance(self, _BATCH_STATISTICS):
            _warn_batch_statistics(self)
        dim = self._co_time_dim
        return self.forward(x.unsqueeze(dim)).squeeze(dim)

    def __reduce_ex__(self, protocol):
        # Pickle as the torch class, then restore the stepping class on load: the dynamic
        # class cannot be found by name.
        stepping = type(self)
        object.__setattr__(self, "__class__", stepping._co_base)
        try:
            reduced = self.__reduce_ex__(protocol)
        finally:
            object.__setattr__(self, "__class__", stepping)
        return (_restore_stepping, (reduced[0], reduced[1])) + tuple(reduced[2:])


def _batch_norm_frame(self, x: Tensor) -> Tensor:
    """An eval-mode BatchNorm step: the per-channel op applies to the frame ``(B, C, *S)`` as it
    is (``forward`` would add and remove the time dim and re-check its arguments per step).

    On the CPU it calls the kernel that ``torch.batch_norm`` ends in (same result) without the
    two dispatch layers that pick it; elsewhere ``torch.batch_norm`` picks cuDNN etc., and the
    ONNX tracer only knows ``batch_norm``. A step whose channels differ from ``num_features`` is
    refused (the kernel would read past the statistics)."""
    if (
        self.training
        or self.running_mean is None
        or self._co_time_dim != 2
        or x.dim() != self._co_frame_dims
        or x.shape[1] != self.num_features
    ):
        if self._co_time_dim == 2:
            check_step_input(self, x, self._co_frame_dims, self.num_features)
        return _ForwardStepping._frame(self, x)
    if x.device.type == "cpu" and not torch.jit.is_tracing():
        return torch.native_batch_norm(
            x, self.weight, self.bias, self.running_mean, self.running_var, False, 0.0, self.eps
        )[0]
    return torch.batch_norm(
        x, self.weight, self.bias, self.running_mean, self.running_var,
        False, 0.0, self.eps, torch.backends.cudnn.enabled,
    )  # fmt: skip


def _relu_frame(self, x: Tensor) -> Tensor:
    return torch.relu_(x) if self.inplace else torch.relu(x)


def _silu_frame(self, x: Tensor) -> Tensor:
    return torch.nn.functional.silu(x, inplace=self.inplace)


def _sigmoid_frame(self, x: Tensor) -> Tensor:
    return torch.sigmoid(x)


def _identity_frame(self, x: Tensor) -> Tensor:
    return x


#: Per-frame implementations of elementwise torch classes (exactly these classes, not their
#: subclasses, whose ``forward`` may differ): the step skips ``forward``'s unsqueeze/squeeze of
#: the time dim and its Python wrappers, which cost more than the op on a small frame.
_FAST_FRAMES: Dict[Type[nn.Module], Callable[[nn.Module, Tensor], Tensor]] = {
    nn.BatchNorm1d: _batch_norm_frame,
    nn.BatchNorm2d: _batch_norm_frame,
    nn.BatchNorm3d: _batch_norm_frame,
    nn.ReLU: _relu_frame,
    nn.SiLU: _silu_frame,
    nn.Sigmoid: _sigmoid_frame,
    nn.Identity: _identity_frame,
}

#: Dims of a step (a clip without its time dim) for the BatchNorm classes.
_FRAME_DIMS = {nn.BatchNorm1d: 2, nn.BatchNorm2d: 3, nn.BatchNorm3d: 4}


def _restore_stepping(build: Callable, args: tuple) -> nn.Module:
    module = build(*args)
    module.__class__ = _stepping_class(type(module))
    return module


_BATCH_STATISTICS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d) + _INSTANCE_NORMS
_warned: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def _warn_batch_statistics(module: nn.Module) -> None:
    if module not in _warned:
        _warned.add(module)
        warnings.warn(
            f"{type(module).__name__} is in train mode: each step is normalised with that "
            "step's own batch statistics, not the clip's, so steps differ from forward. "
            "Call .eval() for continual inference.",
            stacklevel=4,
        )


_STEPPING_CLASSES: Dict[Type[nn.Module], type] = {}
_stepping_listeners: List[Callable[[type, Type[nn.Module]], None]] = []


def on_stepping_class(listener: Callable[[type, Type[nn.Module]], None]) -> None:
    """Call ``listener(stepping_class, torch_class)`` for every ``forward_stepping`` class: at
    once for those that exist, then for each new one (``cozoo.co.flops`` counts them so)."""
    _stepping_listeners.append(listener)
    for kind, stepping in list(_STEPPING_CLASSES.items()):
        listener(stepping, kind)


def _stepping_class(kind: Type[nn.Module]) -> type:
    cls = _STEPPING_CLASSES.get(kind)
    if cls is None:
        namespace = {"__module__": kind.__module__, "_co_base": kind}
        if kind in _FAST_FRAMES:
            namespace["_frame"] = _FAST_FRAMES[kind]
            namespace["_co_frame_dims"] = _FRAME_DIMS.get(kind, 0)
        cls = type(kind.__name__, (_ForwardStepping, kind), namespace)
        cls.__qualname__ = kind.__qualname__
        _STEPPING_CLASSES[kind] = cls
        for listener in _stepping_listeners:
            listener(cls, kind)
    return cls


def forward_stepping(module: nn.Module, dim: int = 2) -> nn.Module:
    """Give a temporally local ``torch.nn`` module the continual step modes, in place.

    The module keeps its class (it becomes an instance of a subclass), parameters and
    ``state_dict`` keys; ``forward_step(x)`` is ``forward(x.unsqueeze(dim)).squeeze(dim)``.
    Returns the same object, as ``continual-inference`` does; ``continual`` copies first.
    """
    if isinstance(module, CoModule):
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(f"forward_stepping: expected an nn.Module, got {type(module).__name__}")
    module.__class__ = _stepping_class(type(module))
    object.__setattr__(module, "_co_time_dim", dim)
    return module


def is_temporally_local(module: nn.Module) -> Optional[bool]:
    """Whether ``continual`` would wrap ``module`` with ``forward_stepping``."""
    return type(module) in TEMPORALLY_LOCAL
