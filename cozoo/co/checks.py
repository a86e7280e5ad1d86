"""Checks of what a step is given: errors that name the module, what it expected and what came.

``StepShapeError`` is raised for a step (or chunk) that does not fit its module: the wrong
number of dims, a channel count other than the module's, or a shape other than the one the
stream's state was built for. Modules check when a stream's state is created (windows), or with
an integer comparison per step (stateless layers), so a step that cannot fit fails at once.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from torch import Tensor, nn

__all__ = [
    "StepShapeError",
    "check_step_input",
    "check_step_shape",
    "module_label",
    "step_input_error",
    "step_layout",
]


class StepShapeError(RuntimeError, ValueError):
    """A step (or chunk) does not fit the module: wrong number of dims, a channel count other
    than the module's, or a shape other than the one the stream's state was built for.

    A ``ValueError`` too: the argument is wrong, and the modules that checked the rank of a step
    with a ``ValueError`` before raise this now."""


def check_step_shape(module: nn.Module, x: Tensor, expected: Tuple[int, ...]) -> None:
    """Raise a clear error when a step does not fit the shape its state was built for."""
    if tuple(x.shape) != tuple(expected):
        raise StepShapeError(
            f"{type(module).__name__}: got a step of shape {tuple(x.shape)}, but the state of "
            f"this stream was built for steps of shape {tuple(expected)} (B, C, *S). A changed "
            "batch size, channel count or spatial size needs a clean_state() first."
        )


def module_label(module: nn.Module) -> str:
    """``Conv3d(2, 2, kernel_size=(3, 3, 3), ...)``: the class and its arguments, for errors."""
    return f"{type(module).__name__}({module.extra_repr()})"


def step_layout(step_dims: int, channels: Optional[int], clip: bool = False) -> str:
    """``(B, C=2, H, W)``-style names of the dims of a step of ``step_dims`` dims (with
    ``clip``: of a clip of such steps, time at dim 2)."""
    spatial = {0: [], 1: ["S"], 2: ["H", "W"], 3: ["D", "H", "W"]}.get(
        step_dims - 2, [f"S{i}" for i in range(step_dims - 2)]
    )
    names = ["B", "C" if channels is None else f"C={channels}"]
    names += (["T"] if clip else []) + spatial
    return f"({', '.join(names)})"


def check_step_input(
    module: nn.Module,
    x: Any,
    dims: int,
    channels: Optional[int] = None,
    clip: bool = False,
    channel_dim: int = 1,
) -> None:
    """Raise ``StepShapeError`` unless ``x`` is a tensor of ``dims`` dims (a step, or with
    ``clip`` a chunk) with ``channels`` entries at ``channel_dim`` (unchecked if None).

    Modules call it when a stream's state is created, so a step that cannot fit fails at the
    stream's first step, not when the module's window first fills.
    """
    error = step_input_error(module, x, dims, channels, clip, channel_dim)
    if error is not None:
        raise error


def step_input_error(
    module: nn.Module,
    x: Any,
    dims: int,
    channels: Optional[int] = None,
    clip: bool = False,
    channel_dim: int = 1,
) -> Optional[StepShapeError]:
    """The ``StepShapeError`` that ``check_step_input`` raises, or None if ``x`` fits."""
    if isinstance(x, Tensor) and x.dim() == dims:
        if channels is None or (-dims <= channel_dim < dims and x.shape[channel_dim] == channels):
            return None
    what = "chunk" if clip else "step"
    at_dim_one = channel_dim % max(dims, 1) == 1  # the (B, C, ...) layout: name the dims
    layout = step_layout(dims - 1 if clip else dims, channels, clip) + " " if at_dim_one else ""
    expected = f"a {what} {layout}of {dims} dims"
    if channels is not None:
        expected += f" with {channels} channels" + ("" if at_dim_one else f" at dim {channel_dim}")
    if not isinstance(x, Tensor):
        got = f"a {type(x).__name__}"
    elif x.dim() != dims:
        got = f"{x.dim()} dims, shape {tuple(x.shape)}"
    else:
        got = f"{x.shape[channel_dim]} channels, shape {tuple(x.shape)}"
    hint = ""
    if not clip and isinstance(x, Tensor) and x.dim() == dims + 1:
        hint = "; a clip (B, C, T, ...) goes to forward or forward_steps"
    elif clip and isinstance(x, Tensor) and x.dim() == dims - 1:
        hint = "; a single step goes to forward_step"
    return StepShapeError(f"{module_label(module)}: expected {expected}, got {got}{hint}")
