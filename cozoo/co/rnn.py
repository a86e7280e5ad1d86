"""Continual recurrent layers: ``RNN``, ``GRU``, ``LSTM`` over clips ``(B, C, T)``.

They subclass the ``torch.nn`` classes, so parameters and ``state_dict`` keys are torch's and
weights load either way. The layout is the continual one (channels at dim 1, time at dim 2)::

    forward(x (B, C, T), hx=None)   -> (output (B, H_out, T), hidden)      stateless, like torch
    forward_step(x_t (B, C))        -> (B, H_out)                           reads/stores the state
    forward_steps(x (B, C, T))      -> (B, H_out, T)                        one torch call per chunk

The state is torch's hidden state: ``(h,)`` for RNN/GRU, ``(h, c)`` for LSTM, each
``(num_layers, B, H)`` (``h`` has ``H_out = proj_size or hidden_size`` features), on the input's
device and dtype. ``set_state`` also takes a bare ``h`` tensor. A recurrent state starts as
zeros, whatever the first input is, so ``clean_state(streams=[i])`` zeroes stream ``i``'s rows
right away: its next step starts exactly like a fresh single-stream module, while the other
streams continue untouched.

``receptive_field`` is ``math.inf``: an output depends on every step since the state was
cleaned (the reference library reports 1). ``delay`` is 0: every step yields an output.
Only unidirectional modules can run on a stream: ``bidirectional=True`` is refused, and
``batch_first`` must stay True (``build_from`` accepts torch modules with either setting, whose
weights are the same). In training mode with ``dropout > 0`` the dropout masks of a step-wise
run differ from those of ``forward`` (as any two torch calls do).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from .checks import StepShapeError, check_step_shape
from .module import CoModule
from .validity import Valid, valid_mask

__all__ = ["GRU", "LSTM", "RNN"]

RecurrentState = Tuple[Tensor, ...]  # (h,) or (h, c); each (num_layers, B, H)
Hidden = Union[Tensor, Tuple[Tensor, Tensor]]  # torch's format: h, or (h, c) for an LSTM


def _refuse_unsupported(name: str, batch_first: bool, bidirectional: bool) -> None:
    if bidirectional:
        raise ValueError(
            f"{name}: bidirectional=True is not supported; a continual module processes a stream "
            "step by step and cannot read future steps (use a unidirectional module)"
        )
    if not batch_first:
        raise ValueError(
            f"{name}: batch_first=False is not supported; continual modules always take clips "
            "(B, C, T) and steps (B, C). Weights do not depend on batch_first: build_from accepts "
            "torch modules with either setting"
        )


class _ContinualRecurrent(CoModule):
    """Shared implementation of the continual recurrent modules."""

    _torch_cls: type  # nn.RNN, nn.GRU or nn.LSTM
    _state_names: Tuple[str, ...] = ("h",)

    # ---- temporal properties ------------------------------------------------------------------
    @property
    def receptive_field(self) -> float:  # type: ignore[override]
        """``math.inf``: the output depends on every step since the last ``clean_state``."""
        return math.inf

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def _args_from(cls, module: nn.Module) -> Dict[str, Any]:
        param = next(module.parameters())
        return dict(
            input_size=module.input_size,
            hidden_size=module.hidden_size,
            num_layers=module.num_layers,
            bias=module.bias,
            dropout=module.dropout,
            device=param.device,
            dtype=param.dtype,
        )

    @classmethod
    def build_from(cls, module: nn.Module, **kwargs):
        """A continual copy of a ``torch.nn`` recurrent module with the same weights.

        ``module`` may be ``batch_first`` or not; ``kwargs`` override constructor arguments.
        Raises ``ValueError`` for a bidirectional module (its reverse weights cannot be used).
        """
        name = f"{cls.__name__}.build_from"
        if not isinstance(module, cls._torch_cls):
            raise TypeError(
                f"{name} expects an nn.{cls._torch_cls.__name__}, got {type(module).__name__}"
            )
        if module.bidirectional:
            raise ValueError(
                f"{name}: the {type(module).__name__} is bidirectional; a continual module cannot "
                "run the reverse direction on a stream (its weights would be dropped)"
            )
        args = cls._args_from(module)
        args.update(kwargs)
        comodule = cls(**args)
        comodule.load_state_dict(module.state_dict())
        return comodule

    # ---- shapes and state formats -------------------------------------------------------------
    def _state_sizes(self) -> Tuple[int, ...]:
        """Feature size of each state tensor."""
        return (self.hidden_size,)

    def _check_input(self, x: Tensor, clip: bool) -> None:
        dims, layout = (3, "a clip (B, C, T)") if clip else (2, "a step (B, C)")
        if not isinstance(x, Tensor) or x.dim() != dims or x.shape[1] != self.input_size:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            error = ValueError if clip else StepShapeError  # (a ValueError too)
            raise error(
                f"{type(self).__name__}: expected {layout} with C = input_size = "
                f"{self.input_size}, got {got}"
            )

    def _as_state(self, state: Any) -> RecurrentState:
        """A user-given state (``h``, ``(h,)``, ``(h, c)`` or a list) as a validated tuple."""
        name, names = type(self).__name__, self._state_names
        expected = "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"
        parts = (state,) if isinstance(state, Tensor) else state
        if not isinstance(parts, (tuple, list)) or len(parts) != len(names):
            raise TypeError(
                f"{name}: a state is {expected} with tensors of shape (num_layers, B, H), "
                f"got {type(state).__name__}"
                + (f" of length {len(parts)}" if isinstance(parts, (tuple, list)) else "")
            )
        parts = tuple(parts)
        for part, label, size in zip(parts, names, self._state_sizes()):
            if (
                not isinstance(part, Tensor)
                or part.dim() != 3
                or part.shape[0] != self.num_layers
                or part.shape[2] != size
                or part.shape[1] != parts[0].shape[1]
            ):
                got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise ValueError(
                    f"{name}: state tensor {label} must have shape (num_layers={self.num_layers}, "
                    f"B, {size}) with one B for all state tensors, got {got}"
                )
        return parts

    @staticmethod
    def _coerce(state: Any) -> Optional[RecurrentState]:
        """Cheap normalisation of a state passed to the pure step (bare tensor, list)."""
        if state is None or state.__class__ is tuple:
            return state
        if isinstance(state, Tensor):
            return (state,)
        return tuple(state)

    def _zeros(self, x: Tensor) -> RecurrentState:
        """The fresh state for a batch like ``x`` (on its device, in its dtype)."""
        batch = x.shape[0]
        return tuple(
            torch.zeros(self.num_layers, batch, size, dtype=x.dtype, device=x.device)
            for size in self._state_sizes()
        )

    def _to_hx(self, state: Optional[RecurrentState]) -> Optional[Hidden]:
        if state is None:
            return None
        return state[0] if len(state) == 1 else state

    def _run(self, x_btc: Tensor, state: Optional[RecurrentState]):
        """One torch call: ``(B, T, C)`` -> ``(output (B, T, H_out), next state tuple)``."""
        out, hidden = self._torch_cls.forward(self, x_btc, self._to_hx(state))
        return out, (hidden,) if isinstance(hidden, Tensor) else tuple(hidden)

    def _check_batch(self, x_step: Tensor, state: Optional[RecurrentState]) -> None:
        if state is not None and x_step.shape[0] != state[0].shape[1]:
            check_step_shape(self, x_step, (state[0].shape[1], self.input_size))

    # ---- torch.nn forward ---------------------------------------------------------------------
    def forward(self, input: Tensor, hx: Optional[Any] = None):
        """Clip ``(B, C, T)`` -> ``(output (B, H_out, T), hidden)``, exactly torch's result.

        ``hx``/``hidden`` are in torch's format (``h``, or ``(h, c)`` for an LSTM); ``hx`` may
        also be a state as ``get_state`` returns it. The stored state is neither read nor written.
        """
        self._check_input(input, clip=True)
        if hx is not None:
            hx = self._to_hx(self._as_state(hx))
        out, hidden = self._torch_cls.forward(self, input.transpose(1, 2), hx)
        return out.transpose(1, 2), hidden

    # ---- pure step ----------------------------------------------------------------------------
    def _step(self, x: Tensor, state: Any, valid: Valid = True):
        if valid is False:
            return None, False, state
        self._check_input(x, clip=False)
        state = self._coerce(state)
        self._check_batch(x, state)
        if state is None and valid is not True:
            state = self._zeros(x)
        out, next_state = self._run(x.unsqueeze(1), state)
        if valid is not True:
            # Streams without a frame keep their rows (the batch is dim 1 of a hidden state).
            keep_new = valid_mask(valid, x).view(1, -1, 1)
            next_state = tuple(
                torch.where(keep_new, new, old) for new, old in zip(next_state, state)
            )
        return out[:, 0], valid, next_state

    def _steps(self, x: Optional[Tensor], state: Any, pad_end: bool = False):
        if x is None:
            return None, state, None
        self._check_input(x, clip=True)
        if x.shape[2] == 0:
            return None, state, None
        state = self._coerce(state)
        self._check_batch(x[:, :, 0], state)
        out, next_state = self._run(x.transpose(1, 2), state)
        return out.transpose(1, 2), next_state, None

    def _reset_streams(self, state: RecurrentState, streams: Sequence[int]) -> RecurrentState:
        batch = state[0].shape[1]
        reset = [False] * batch
        for i in streams:
            if not -batch <= i < batch:
                raise IndexError(f"stream index {i} is out of range for a batch of {batch} streams")
            reset[i] = True
        mask = torch.tensor(reset, dtype=torch.bool, device=state[0].device).view(1, batch, 1)
        return tuple(t.masked_fill(mask, 0) for t in state)

    # ---- state API ----------------------------------------------------------------------------
    def set_state(self, state: Any) -> None:
        """Store a state: ``(h,)`` / ``(h, c)`` as ``get_state`` returns it, or a bare ``h``."""
        super().set_state(None if state is None else self._as_state(state))


class RNN(_ContinualRecurrent, nn.RNN):
    """Continual Elman ``nn.RNN`` (tanh or relu): clip ``(B, C, T)``, step ``(B, C)``.

    State ``(h,)`` with ``h`` of shape ``(num_layers, B, hidden_size)``. See the module docs.
    """

    _torch_cls = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        dropout: float = 0.0,
        device=None,
        dtype=None,
        *,
        batch_first: bool = True,
        bidirectional: bool = False,
    ):
        _refuse_unsupported(type(self).__name__, batch_first, bidirectional)
        nn.RNN.__init__(
            self, input_size, hidden_size, num_layers=num_layers, nonlinearity=nonlinearity,
            bias=bias, batch_first=True, dropout=dropout, bidirectional=False, device=device,
            dtype=dtype,
        )  # fmt: skip

    @classmethod
    def _args_from(cls, module: nn.Module) -> Dict[str, Any]:
        args = super()._args_from(module)
        args["nonlinearity"] = module.nonlinearity
        return args


class GRU(_ContinualRecurrent, nn.GRU):
    """Continual ``nn.GRU``: clip ``(B, C, T)``, step ``(B, C)``.

    State ``(h,)`` with ``h`` of shape ``(num_layers, B, hidden_size)``. See the module docs.
    """

    _torch_cls = nn.GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        dropout: float = 0.0,
        device=None,
        dtype=None,
        *,
        batch_first: bool = True,
        bidirectional: bool = False,
    ):
        _refuse_unsupported(type(self).__name__, batch_first, bidirectional)
        nn.GRU.__init__(
            self, input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=True,
            dropout=dropout, bidirectional=False, device=device, dtype=dtype,
        )  # fmt: skip


class LSTM(_ContinualRecurrent, nn.LSTM):
    """Continual ``nn.LSTM`` (optionally with ``proj_size``): clip ``(B, C, T)``, step ``(B, C)``.

    State ``(h, c)``: ``h`` ``(num_layers, B, proj_size or hidden_size)``, ``c``
    ``(num_layers, B, hidden_size)``. See the module docs.
    """

    _torch_cls = nn.LSTM
    _state_names = ("h", "c")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        dropout: float = 0.0,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        batch_first: bool = True,
        bidirectional: bool = False,
    ):
        _refuse_unsupported(type(self).__name__, batch_first, bidirectional)
        nn.LSTM.__init__(
            self, input_size, hidden_size, num_layers=num_layers, bias=bias, batch_first=True,
            dropout=dropout, bidirectional=False, proj_size=proj_size, device=device, dtype=dtype,
        )  # fmt: skip

    @classmethod
    def _args_from(cls, module: nn.Module) -> Dict[str, Any]:
        args = super()._args_from(module)
        args["proj_size"] = module.proj_size
        return args

    def _state_sizes(self) -> Tuple[int, ...]:
        return (self.proj_size or self.hidden_size, self.hidden_size)
