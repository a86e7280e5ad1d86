"""Shared fixtures for the cozoo test-suite.

Helpers are handed out as fixtures (``run_steps``, ``pattern_of``, ...) so that test modules do
not import from this file.
"""

from __future__ import annotations

from typing import Any, List, Optional

import pytest
import torch
from torch import Tensor

from cozoo.co import modes as co_modes


# --------------------------------------------------------------------------------------------
# Plain helpers
# --------------------------------------------------------------------------------------------
def _run_steps(module, x: Tensor, **kwargs) -> List[Optional[Tensor]]:
    """``module.forward_step`` on every frame of the clip ``x`` (time at dim 2), in order."""
    return [module.forward_step(x[:, :, t], **kwargs) for t in range(x.shape[2])]


def _pattern_of(outputs) -> str:
    """``'.'`` for a None step output, ``'O'`` for a tensor (docs/architecture.md's notation)."""
    return "".join("." if y is None else "O" for y in outputs)


def _expected_pattern(steps: int, delay: int, stride: int) -> str:
    """Output at step t iff ``t >= delay and (t - delay) % stride == 0`` (the step contract)."""
    return "".join("O" if t >= delay and (t - delay) % stride == 0 else "." for t in range(steps))


def _tree_map(obj: Any, fn):
    if isinstance(obj, Tensor):
        return fn(obj)
    if isinstance(obj, tuple):
        mapped = [_tree_map(o, fn) for o in obj]
        return type(obj)(*mapped) if hasattr(obj, "_fields") else tuple(mapped)
    if isinstance(obj, list):
        return [_tree_map(o, fn) for o in obj]
    return obj


def _clone_state(state: Any) -> Any:
    """A deep copy of a state (tensors cloned, everything else kept)."""
    return _tree_map(state, lambda t: t.detach().clone())


def _tensors_of(obj: Any) -> List[Tensor]:
    found: List[Tensor] = []
    _tree_map(obj, lambda t: found.append(t) or t)
    return found


def _assert_state_equal(actual: Any, expected: Any) -> None:
    """Same structure, same non-tensor leaves, bit-identical tensors (dtype included)."""
    if isinstance(expected, Tensor):
        assert isinstance(actual, Tensor), f"expected a tensor, got {type(actual).__name__}"
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        assert torch.equal(actual, expected)
    elif isinstance(expected, (tuple, list)):
        assert type(actual) is type(expected), (type(actual), type(expected))
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            _assert_state_equal(a, e)
    else:
        assert actual == expected, (actual, expected)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _seed_and_check_call_mode_stack():
    """Deterministic tests; no test may leave a ``co.call_mode`` block open."""
    torch.manual_seed(0)
    yield
    leaked = co_modes.active_call_mode()
    while co_modes.active_call_mode() is not None:  # keep later tests independent
        co_modes._mode_stack.pop()
    assert leaked is None, f"a test left call_mode({leaked}) active"


@pytest.fixture
def run_steps():
    return _run_steps


@pytest.fixture
def pattern_of():
    return _pattern_of


@pytest.fixture
def expected_pattern():
    return _expected_pattern


@pytest.fixture
def clone_state():
    return _clone_state


@pytest.fixture
def tensors_of():
    return _tensors_of


@pytest.fixture
def assert_state_equal():
    return _assert_state_equal
