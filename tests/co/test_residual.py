"""``co.Residual`` with every ``residual_shrink`` mode, every built-in ``reduce`` and branches of
odd and even delay: the call modes agree exactly, or construction refuses with a clear error.

The branches are gates in the shape of a squeeze-excitation (temporal pool, 1x1 conv, sigmoid),
a padded convolution, a length-preserving convolution, and a gate whose pool is global in time
in ``forward`` (an adaptive pool), for which no crop of the residual can follow the steps.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from cozoo import co

TOL = dict(atol=1e-5, rtol=1e-5)
C = 3
REDUCES: Dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "sum": torch.add,
    "mul": torch.mul,
    "max": torch.maximum,
    "concat": lambda a, b: torch.cat([a, b], 1),
}
SHRINKS = [False, True, "centered", "lagging", "leading"]


def pool_gate(delay: int) -> nn.Module:
    """A squeeze-excitation gate over the last ``delay + 1`` frames: no padding."""
    return nn.Sequential(nn.AvgPool2d((delay + 1, 1), stride=1), nn.Conv2d(C, C, 1), nn.Sigmoid())


def padded_conv(delay: int) -> nn.Module:
    """Kernel ``delay + 2`` with one frame of padding: shortens the clip by ``delay - 1``."""
    return nn.Conv2d(C, C, (delay + 2, 1), padding=(1, 0))


def preserving_conv(delay: int) -> nn.Module:
    """Kernel ``2 * delay + 1`` with ``delay`` frames of padding: keeps the clip's length."""
    return nn.Conv2d(C, C, (2 * delay + 1, 1), padding=(delay, 0))


def global_gate(delay: int) -> co.Sequential:
    """Global average in time in ``forward``; the last ``delay + 1`` frames in steps."""
    return co.Sequential(
        co.AdaptiveAvgPool2d((1, 1), kernel_size=delay + 1),
        co.Conv2d(C, C, 1),
        nn.Sigmoid(),
    )


BRANCHES = {
    "pool_gate": pool_gate,
    "padded_conv": padded_conv,
    "preserving_conv": preserving_conv,
}


def residual_offset(shrink, spare: int) -> Optional[int]:
    """Frames of ``x`` dropped at the front of the residual; None where construction refuses."""
    if shrink is False:
        return 0 if spare == 0 else None
    if shrink in (True, "centered"):
        return spare // 2
    return 0 if shrink == "lagging" else spare


def assert_modes_agree(m: nn.Module, x: Tensor, expected: Tensor) -> None:
    """On a fresh module: ``forward`` and ``forward_steps(pad_end=True)`` equal ``expected``;
    step by step, the outputs come from step ``delay`` on and equal its first frames; steps
    followed by ``forward_steps(rest, pad_end=True)`` equal all of it."""
    m.clean_state()
    assert_close(m.forward(x), expected, **TOL)
    assert_close(m.forward_steps(x, pad_end=True), expected, **TOL)
    m.clean_state()
    outputs = [m.forward_step(x[:, :, t]) for t in range(x.shape[2])]
    assert all(y is None for y in outputs[: m.delay])
    stepped = torch.stack(outputs[m.delay :], 2)
    assert_close(stepped, expected[:, :, : stepped.shape[2]], **TOL)
    m.clean_state()
    head = [m.forward_step(x[:, :, t]) for t in range(x.shape[2] - 1)]
    rest = m.forward_steps(x[:, :, -1:], pad_end=True)
    parts = [y.unsqueeze(2) for y in head if y is not None] + [rest]
    assert_close(torch.cat(parts, 2), expected, **TOL)
    m.clean_state()


@pytest.mark.parametrize("reduce", list(REDUCES))
@pytest.mark.parametrize("shrink", SHRINKS, ids=str)
@pytest.mark.parametrize("delay", [2, 3], ids=["even_delay", "odd_delay"])
@pytest.mark.parametrize("branch", list(BRANCHES))
def test_residual_shrink_modes_are_exact(branch, delay, shrink, reduce):
    body = BRANCHES[branch](delay).eval()
    probe = body(torch.zeros(1, C, 20, 2))
    spare = 20 - probe.shape[2]
    offset = residual_offset(shrink, spare)
    if offset is None:
        with pytest.raises(ValueError, match="shortens the clip by"):
            co.Residual(body, reduce=reduce, residual_shrink=shrink)
        return
    m = co.Residual(body, reduce=reduce, residual_shrink=shrink).eval()
    assert m.delay == delay
    x = torch.randn(2, C, 11, 2)
    with torch.no_grad():
        y = body(x)
        expected = REDUCES[reduce](x[:, :, offset : offset + y.shape[2]], y)
        assert_modes_agree(m, x, expected)


@pytest.mark.parametrize("reduce", list(REDUCES))
@pytest.mark.parametrize("shrink", SHRINKS, ids=str)
@pytest.mark.parametrize("delay", [2, 3], ids=["even_delay", "odd_delay"])
def test_residual_around_a_global_pool(delay, shrink, reduce):
    """Only ``residual_shrink=False`` with a broadcasting reduce is built; its modes agree on a
    clip as long as the pool's window, as the adaptive pool's own do."""
    gate = global_gate(delay).eval()
    if shrink is not False:
        with pytest.raises(ValueError) as raised:
            co.Residual(gate, reduce=reduce, residual_shrink=shrink)
        message = str(raised.value)
        for part in ("Sequential", "AdaptiveAvgPool2d", f"delay {delay}", repr(shrink)):
            assert part in message
        assert "residual_shrink=False" in message and "stride=1" in message
        return
    if reduce == "concat":
        with pytest.raises(ValueError, match="AdaptiveAvgPool2d.*reduce='concat'"):
            co.Residual(gate, reduce=reduce, residual_shrink=shrink)
        return
    m = co.Residual(gate, reduce=reduce, residual_shrink=shrink).eval()
    x = torch.randn(2, C, delay + 1, 2)
    with torch.no_grad():
        assert_modes_agree(m, x, REDUCES[reduce](x, gate(x)))


def test_squeeze_excitation_gate_with_a_sliding_pool_and_shrink():
    """The replacement the refusal suggests: a stride-1 pool slides in every mode."""
    gate = nn.Sequential(nn.AvgPool3d((4, 1, 1), stride=1), nn.Conv3d(C, C, 1), nn.Sigmoid())
    m = co.Residual(gate, reduce="mul", residual_shrink=True).eval()
    x = torch.randn(2, C, 9, 3, 3)
    with torch.no_grad():
        assert_modes_agree(m, x, x[:, :, 1:7] * gate(x))


@pytest.mark.parametrize("shrink", SHRINKS, ids=str)
def test_residual_refuses_a_lengthening_module(shrink):
    conv = co.Conv1d(C, C, 4, padding=2)  # delay 1, padding 2: T + 1 frames
    with pytest.raises(ValueError, match=r"Conv1d lengthens the clip by 1 frames.*padding 2"):
        co.Residual(conv, residual_shrink=shrink)


def test_residual_stride_error_names_the_module_and_the_fix():
    with pytest.raises(ValueError, match=r"AvgPool3d has temporal stride 4.*stride=1"):
        co.Residual(co.AvgPool3d((4, 1, 1)), reduce="mul", residual_shrink=True)
