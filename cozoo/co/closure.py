"""Closures: wrap a function as a continual module (``Lambda``) and small constant maps.

A ``Lambda`` is stateless: output step ``t`` is ``fn`` of input step ``t``. How ``fn`` sees the
data depends on ``takes_time``::

    takes_time=False   fn(step (B, C, *S)) -> (B, C', *S')       clip: fn on each step, stacked
    takes_time=True    fn(clip (B, C, T, *S)) -> (B, C', T, *S')  step: fn(x[:, :, None])[:, :, 0]

With ``takes_time=False`` the function is opaque (it may mix the batch, e.g. a reshape that
includes the batch dimension), so a clip is processed by one call per step; give a function that
handles a whole clip and ``takes_time=True`` for the vectorised path. The factories ``Identity``,
``Add``, ``Multiply``, ``Constant``, ``Zero`` and ``One`` all take time.
"""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor, nn

from .module import Stateless

__all__ = ["Add", "Constant", "Identity", "Lambda", "Multiply", "One", "Zero", "function_repr"]

Fn = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------------------------
# Function reprs
# --------------------------------------------------------------------------------------------
def _lambda_source(fn: Callable) -> Optional[str]:
    """The source text of a lambda (``"lambda x: x + 1"``), or None where it is unavailable."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        filename = inspect.getsourcefile(fn) or code.co_filename
    except TypeError:
        return None
    lines = linecache.getlines(filename, getattr(fn, "__globals__", None))
    if not lines:
        return None
    source = "".join(lines)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    candidates = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno
    ]
    if len(candidates) > 1 and hasattr(code, "co_positions"):
        # Several lambdas start on this line: keep the innermost one that spans all of the
        # code object's source positions.
        positions = [
            (line, col)
            for line, end_line, col, end_col in code.co_positions()
            if None not in (line, end_line, col, end_col) and (end_line, end_col) > (line, col)
        ]

        def spans(node: ast.Lambda) -> bool:
            start = (node.lineno, node.col_offset)
            end = (node.end_lineno, node.end_col_offset)
            return all(start <= pos < end for pos in positions)

        inside = [node for node in candidates if spans(node)] if positions else []
        if inside:
            candidates = [
                min(
                    inside,
                    key=lambda n: (n.end_lineno - n.lineno, n.end_col_offset - n.col_offset),
                )
            ]
    if len(candidates) != 1:
        return None
    text = ast.get_source_segment(source, candidates[0])
    if text is None:
        return None
    return " ".join(text.split()) if "\n" in text else text


def function_repr(fn: Any) -> str:
    """A short text for a callable: a lambda's source text, a function's name, a module's repr.

    ``functools.partial`` objects show the wrapped function's name; other callable objects
    (functors) without a ``__name__`` show their class name.
    """
    if isinstance(fn, functools.partial):
        return function_repr(fn.func)
    name = getattr(fn, "__name__", None)
    if name == "<lambda>":
        return _lambda_source(fn) or name
    if isinstance(name, str):
        return name
    if isinstance(fn, nn.Module):
        return repr(fn)
    return type(fn).__name__


# --------------------------------------------------------------------------------------------
# Lambda
# --------------------------------------------------------------------------------------------
def _per_step(fn: Fn, x: Tensor) -> Tensor:
    """``fn`` applied to every step of a clip ``(B, C, T, *S)``, stacked on dim 2."""
    if x.dim() < 3 or x.shape[2] == 0:
        raise ValueError(
            "Lambda(takes_time=False): expected a clip (B, C, T, ...) with at least one step, "
            f"got shape {tuple(x.shape)}"
        )
    return torch.stack([fn(x[:, :, t]) for t in range(x.shape[2])], 2)


class Lambda(Stateless):
    """A stateless continual module that applies a function.

    Args:
        fn: the function, used in every mode without a mode-specific function.
        forward_only_fn: used by ``forward`` instead of ``fn``.
        forward_step_only_fn: used by ``forward_step`` instead of ``fn`` (gets a step).
        forward_steps_only_fn: used by ``forward_steps`` instead of ``fn`` (gets a clip).
        takes_time: if True, ``fn`` receives whole clips ``(B, C, T, *S)``; if False, one step
            ``(B, C, *S)`` at a time.

    Either ``fn`` or all three mode-specific functions must be given. A function that is an
    ``nn.Module`` is registered as a submodule (``fn``, ``forward_only_fn``...), so its
    parameters appear in ``state_dict`` and move with ``.to()``.
    """

    def __init__(
        self,
        fn: Optional[Fn] = None,
        forward_only_fn: Optional[Fn] = None,
        forward_step_only_fn: Optional[Fn] = None,
        forward_steps_only_fn: Optional[Fn] = None,
        takes_time: bool = False,
    ):
        super().__init__()
        mode_fns = (forward_only_fn, forward_step_only_fn, forward_steps_only_fn)
        for name, f in zip(("fn",) + _MODE_FN_NAMES, (fn,) + mode_fns):
            if f is not None and not callable(f):
                raise TypeError(f"Lambda: {name} must be callable or None, got {type(f).__name__}")
        if fn is None and not all(f is not None for f in mode_fns):
            raise ValueError(
                "Lambda: give fn, or all of forward_only_fn, forward_step_only_fn and "
                "forward_steps_only_fn"
            )
        self.fn = fn
        self.forward_only_fn = forward_only_fn
        self.forward_step_only_fn = forward_step_only_fn
        self.forward_steps_only_fn = forward_steps_only_fn
        self.takes_time = bool(takes_time)

    @classmethod
    def build_from(
        cls,
        fn: Optional[Fn] = None,
        forward_only_fn: Optional[Fn] = None,
        forward_step_only_fn: Optional[Fn] = None,
        forward_steps_only_fn: Optional[Fn] = None,
        takes_time: bool = False,
    ) -> Lambda:
        """Same as the constructor (for symmetry with the other modules' ``build_from``)."""
        return cls(fn, forward_only_fn, forward_step_only_fn, forward_steps_only_fn, takes_time)

    def __repr__(self) -> str:
        # Positional while no argument is skipped, keywords after a gap, so the text is unambiguous.
        parts, gap = [], False
        for name, f in zip(("fn",) + _MODE_FN_NAMES, self._fns()):
            if f is None:
                gap = True
                continue
            text = function_repr(f)
            parts.append(f"{name}={text}" if gap else text)
        if self.takes_time:
            parts.append("takes_time=True")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _fns(self):
        return (
            self.fn,
            self.forward_only_fn,
            self.forward_step_only_fn,
            self.forward_steps_only_fn,
        )

    def _apply_clip(self, fn: Fn, x: Tensor) -> Tensor:
        return fn(x) if self.takes_time else _per_step(fn, x)

    def forward(self, input: Tensor) -> Tensor:
        """Clip ``(B, C, T, *S)`` -> ``(B, C', T, *S')`` (``forward_only_fn`` gets it as is)."""
        if self.forward_only_fn is not None:
            return self.forward_only_fn(input)
        return self._apply_clip(self.fn, input)

    def _clip(self, x: Tensor) -> Tensor:
        if self.forward_steps_only_fn is not None:
            return self.forward_steps_only_fn(x)
        return self._apply_clip(self.fn, x)

    def _frame(self, x: Tensor) -> Tensor:
        if self.forward_step_only_fn is not None:
            return self.forward_step_only_fn(x)
        if self.takes_time:
            return self.fn(x.unsqueeze(2)).squeeze(2)
        return self.fn(x)


_MODE_FN_NAMES = ("forward_only_fn", "forward_step_only_fn", "forward_steps_only_fn")


# --------------------------------------------------------------------------------------------
# Factories
# --------------------------------------------------------------------------------------------
Number = Union[int, float, Tensor]


class _ConstantOp(nn.Module):
    """``x + value``, ``x * value`` or ``value * ones_like(x)``.

    A module, not a closure, so that a tensor ``value`` is a (non-persistent) buffer that moves
    with ``.to()`` / ``.cuda()``; ``__name__`` keeps the ``Lambda`` repr short (``_add``).
    """

    def __init__(self, op: str, value: Number):
        super().__init__()
        self.op = op
        self.__name__ = f"_{op}"
        if isinstance(value, Tensor):
            self.register_buffer("value", value, persistent=False)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.value = value
        else:
            raise TypeError(
                f"{op.capitalize()}: expected an int, a float or a tensor, "
                f"got {type(value).__name__}"
            )

    def forward(self, x: Tensor) -> Tensor:
        if self.op == "add":
            return x + self.value
        if self.op == "multiply":
            return x * self.value
        return self.value * torch.ones_like(x)


def _identity(x: Tensor) -> Tensor:
    return x


def Identity(*args, **kwargs) -> Lambda:  # noqa: N802 - factory named like the module it makes
    """A continual identity (arguments are accepted and ignored, as ``nn.Identity`` does)."""
    return Lambda(_identity, takes_time=True)


def Add(constant: Number) -> Lambda:  # noqa: N802
    """``x + constant`` in every mode; ``constant`` is an int, a float or a broadcastable tensor."""
    return Lambda(_ConstantOp("add", constant), takes_time=True)


def Multiply(factor: Number) -> Lambda:  # noqa: N802
    """``x * factor`` in every mode; ``factor`` is an int, a float or a broadcastable tensor."""
    return Lambda(_ConstantOp("multiply", factor), takes_time=True)


def Constant(constant: Number) -> Lambda:  # noqa: N802
    """``constant * ones_like(x)``: an output of the input's shape filled with ``constant``."""
    return Lambda(_ConstantOp("constant", constant), takes_time=True)


def Zero() -> Lambda:  # noqa: N802
    """``zeros_like(x)``."""
    return Lambda(torch.zeros_like, takes_time=True)


def One() -> Lambda:  # noqa: N802
    """``ones_like(x)``."""
    return Lambda(torch.ones_like, takes_time=True)
