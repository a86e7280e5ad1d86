"""``call_mode`` property, ``co.call_mode`` context manager, ``__call__`` dispatch and hooks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.modules import module as torch_module
from torch.testing import assert_close

from cozoo import co
from cozoo.co import CallMode, CoModule
from cozoo.co.module import active_call_mode

MODES = [CallMode.FORWARD, CallMode.FORWARD_STEPS, CallMode.FORWARD_STEP]
TOL = dict(atol=1e-6, rtol=1e-6)


def make_conv():
    return co.Conv2d(3, 4, (3, 3), padding=(1, 1))  # delay 1


def clip(steps=6):
    return torch.randn(2, 3, steps, 5)


def same_output(a, b):
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a, b)


def which_mode_ran(m):
    """Call ``m`` with spies in place of its three methods; return the mode that ran."""
    ran = []
    names = {"forward": CallMode.FORWARD, "forward_steps": CallMode.FORWARD_STEPS}
    names["forward_step"] = CallMode.FORWARD_STEP
    for name, mode in names.items():
        setattr(m, name, lambda *args, _mode=mode, **kwargs: ran.append(_mode))
    try:
        m(torch.zeros(1))
    finally:
        for name in names:
            delattr(m, name)
    assert len(ran) == 1
    return ran[0]


# --------------------------------------------------------------------------------------------
# The property
# --------------------------------------------------------------------------------------------
def test_default_call_mode_is_forward():
    m = make_conv()
    assert m.call_mode is CallMode.FORWARD
    assert m.call_mode == "forward"
    assert which_mode_ran(m) is CallMode.FORWARD


@pytest.mark.parametrize(
    "value, expected",
    [
        ("forward", CallMode.FORWARD),
        ("FORWARD", CallMode.FORWARD),
        ("forward_steps", CallMode.FORWARD_STEPS),
        ("Forward_Steps", CallMode.FORWARD_STEPS),
        ("forward_step", CallMode.FORWARD_STEP),
        ("FORWARD_STEP", CallMode.FORWARD_STEP),
        (0, CallMode.FORWARD),
        (1, CallMode.FORWARD_STEPS),
        (2, CallMode.FORWARD_STEP),
        (torch.tensor(0), CallMode.FORWARD),
        (torch.tensor(1), CallMode.FORWARD_STEPS),
        (torch.tensor(2, dtype=torch.int32), CallMode.FORWARD_STEP),
        (CallMode.FORWARD, CallMode.FORWARD),
        (CallMode.FORWARD_STEPS, CallMode.FORWARD_STEPS),
        (CallMode.FORWARD_STEP, CallMode.FORWARD_STEP),
    ],
    ids=str,
)
def test_call_mode_property_accepts(value, expected):
    m = make_conv()
    m.call_mode = value
    assert m.call_mode is expected
    assert m.call_mode == expected.value  # compares equal to its string
    assert str(m.call_mode) == expected.value
    # dispatch follows the property (int and fresh tensor modes crash in the reference)
    assert which_mode_ran(m) is expected


@pytest.mark.parametrize(
    "value",
    ["backward", "forward-step", "", 3, -1, True, 1.0, None, torch.tensor(5), torch.tensor([0, 1])],
    ids=repr,
)
def test_unknown_call_mode_raises_key_error(value):
    m = make_conv()
    m.call_mode = "forward_step"
    with pytest.raises(KeyError):
        m.call_mode = value
    assert m.call_mode is CallMode.FORWARD_STEP  # unchanged
    with pytest.raises(KeyError):
        co.call_mode(value)
    assert active_call_mode() is None


def test_call_mode_property_propagates_to_continual_children():
    class Net(CoModule):
        def __init__(self):
            super().__init__()
            self.a = make_conv()
            self.b = torch.nn.Sequential(make_conv())

    net = Net()
    net.call_mode = 2
    assert net.call_mode is CallMode.FORWARD_STEP
    assert net.a.call_mode is CallMode.FORWARD_STEP
    assert net.b[0].call_mode is CallMode.FORWARD_STEP


# --------------------------------------------------------------------------------------------
# Dispatch and kwargs
# --------------------------------------------------------------------------------------------
def test_dispatch_forward():
    m = make_conv()
    twin = copy.deepcopy(m)
    x = clip()
    assert torch.equal(m(x), twin.forward(x))
    assert m.get_state() is None


def test_dispatch_forward_steps_with_kwargs():
    m = make_conv()
    twin = copy.deepcopy(m)
    m.call_mode = "forward_steps"
    x = clip(8)
    assert_close(m(x, pad_end=True), m.forward(x), **TOL)  # kwarg reaches forward_steps
    m.clean_state()
    assert torch.equal(m(x[:, :, :3]), twin.forward_steps(x[:, :, :3]))
    state = m.get_state()
    peek = m(x[:, :, 3:], update_state=False, pad_end=True)
    assert m.get_state() is state
    assert torch.equal(peek, copy.deepcopy(twin).forward_steps(x[:, :, 3:], pad_end=True))
    assert torch.equal(m(x[:, :, 3:], True), twin.forward_steps(x[:, :, 3:], True))  # positional


def test_dispatch_forward_step_with_kwargs():
    m = make_conv()
    twin = copy.deepcopy(m)
    m.call_mode = "forward_step"
    x = clip()
    for t in range(x.shape[2]):
        state = m.get_state()
        peek = m(x[:, :, t], update_state=False)
        assert m.get_state() is state
        expected = twin.forward_step(x[:, :, t])
        assert same_output(peek, expected)
        assert same_output(m(x[:, :, t]), expected)


def test_explicit_methods_ignore_the_property():
    m = make_conv()
    m.call_mode = "forward_step"
    x = clip()
    y = m.forward(x)
    assert y.shape[2] == x.shape[2] and m.get_state() is None
    assert_close(m.forward_steps(x, pad_end=True), y, **TOL)


# --------------------------------------------------------------------------------------------
# The context manager
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prop", MODES, ids=str)
@pytest.mark.parametrize("ctx", MODES, ids=str)
def test_context_overrides_the_property(prop, ctx):
    m = make_conv()
    m.call_mode = prop
    with co.call_mode(ctx) as entered:
        assert entered is None
        assert active_call_mode() is ctx
        assert which_mode_ran(m) is ctx
        assert m.call_mode is prop  # the property itself is untouched
    assert active_call_mode() is None
    assert which_mode_ran(m) is prop


@pytest.mark.parametrize("value", [2, torch.tensor(2), CallMode.FORWARD_STEP, "Forward_Step"])
def test_context_accepts_all_spellings(value):
    m = make_conv()
    with co.call_mode(value):
        assert which_mode_ran(m) is CallMode.FORWARD_STEP


def test_nested_contexts():
    """Reference bug: one "previous" slot; after nesting, later blocks are silently ignored."""
    m = make_conv()  # property: forward
    with co.call_mode("forward_steps"):
        assert which_mode_ran(m) is CallMode.FORWARD_STEPS
        with co.call_mode("forward_step"):
            assert which_mode_ran(m) is CallMode.FORWARD_STEP
            with co.call_mode("forward"):
                assert which_mode_ran(m) is CallMode.FORWARD
            assert which_mode_ran(m) is CallMode.FORWARD_STEP
        assert which_mode_ran(m) is CallMode.FORWARD_STEPS  # inner exit restores the outer
        with co.call_mode("forward_steps"):  # same mode twice
            assert which_mode_ran(m) is CallMode.FORWARD_STEPS
        assert which_mode_ran(m) is CallMode.FORWARD_STEPS
    assert active_call_mode() is None
    assert which_mode_ran(m) is CallMode.FORWARD  # the property is in effect again
    # later blocks still work
    with co.call_mode("forward_step"):
        assert which_mode_ran(m) is CallMode.FORWARD_STEP
    m.call_mode = "forward_steps"
    assert which_mode_ran(m) is CallMode.FORWARD_STEPS


def test_context_object_can_be_reused():
    m = make_conv()
    ctx = co.call_mode("forward_step")
    for _ in range(2):
        with ctx:
            assert which_mode_ran(m) is CallMode.FORWARD_STEP
        assert which_mode_ran(m) is CallMode.FORWARD


def test_context_is_exception_safe():
    m = make_conv()
    m.call_mode = "forward_steps"
    with co.call_mode("forward"):
        with pytest.raises(ValueError, match="boom"):
            with co.call_mode("forward_step"):
                with co.call_mode("forward_steps"):
                    raise ValueError("boom")
        assert active_call_mode() is CallMode.FORWARD
        assert which_mode_ran(m) is CallMode.FORWARD
    assert active_call_mode() is None
    # an error raised by the module itself inside a block
    with pytest.raises(ValueError):
        with co.call_mode("forward_steps"):
            m(torch.randn(2, 3))  # a step is not a clip
    assert active_call_mode() is None
    assert which_mode_ran(m) is CallMode.FORWARD_STEPS


def test_context_with_kwargs():
    """Keyword arguments pass through a ``co.call_mode`` block: ``m(x, pad_end=True)``."""
    m = make_conv()
    x = clip()
    with co.call_mode("forward_steps"):
        y = m(x, pad_end=True)
    assert_close(y, m.forward(x), **TOL)


# --------------------------------------------------------------------------------------------
# Hooks fire in every mode
# --------------------------------------------------------------------------------------------
HOOK_MODES = [
    CallMode.FORWARD,
    CallMode.FORWARD_STEPS,
    CallMode.FORWARD_STEP,
]


def _inputs_for(mode, x):
    if mode is CallMode.FORWARD_STEP:
        return [x[:, :, t] for t in range(x.shape[2])]
    return [x]


@pytest.mark.parametrize("use_context", [False, True])
@pytest.mark.parametrize("mode", HOOK_MODES, ids=str)
def test_forward_hooks_fire_in_every_mode(mode, use_context):
    m = make_conv()
    calls = {"pre": 0, "post": 0}
    seen_outputs = []

    def pre_hook(module, args):
        assert module is m
        calls["pre"] += 1

    def hook(module, args, output):
        assert module is m
        calls["post"] += 1
        seen_outputs.append(output)

    handles = [m.register_forward_pre_hook(pre_hook), m.register_forward_hook(hook)]
    inputs = _inputs_for(mode, clip())
    if use_context:
        with co.call_mode(mode):
            outs = [m(x) for x in inputs]
    else:
        m.call_mode = mode
        outs = [m(x) for x in inputs]
    assert calls == {"pre": len(inputs), "post": len(inputs)}
    assert all(same_output(a, b) for a, b in zip(seen_outputs, outs))
    if mode is CallMode.FORWARD_STEP:
        assert seen_outputs[0] is None  # hooks also see warm-up steps
    for h in handles:
        h.remove()
    m.clean_state()
    with co.call_mode(mode):
        for x in inputs:
            m(x)
    assert calls == {"pre": len(inputs), "post": len(inputs)}  # removed hooks stay silent


@pytest.mark.parametrize("mode", HOOK_MODES, ids=str)
def test_hooks_can_replace_inputs_and_outputs(mode):
    m = make_conv()
    twin = copy.deepcopy(m)
    m.call_mode = mode
    twin.call_mode = mode
    x = clip()
    m.register_forward_pre_hook(lambda module, args: (args[0] * 2,))
    m.register_forward_hook(lambda module, args, out: None if out is None else out + 1)
    for inp in _inputs_for(mode, x):
        got, ref = m(inp), twin(inp * 2)
        assert same_output(got, None if ref is None else ref + 1)


@pytest.mark.parametrize("mode", HOOK_MODES, ids=str)
def test_global_forward_hooks_fire_in_every_mode(mode):
    m = make_conv()
    calls = []
    pre = torch_module.register_module_forward_pre_hook(
        lambda module, args: calls.append(("pre", module)) and None
    )
    post = torch_module.register_module_forward_hook(
        lambda module, args, out: calls.append(("post", module)) and None
    )
    try:
        inputs = _inputs_for(mode, clip())
        with co.call_mode(mode):
            for inp in inputs:
                m(inp)
    finally:
        pre.remove()
        post.remove()
    assert calls.count(("pre", m)) == len(inputs)
    assert calls.count(("post", m)) == len(inputs)


@pytest.mark.parametrize("mode", HOOK_MODES, ids=str)
def test_full_backward_hooks_fire_in_every_mode(mode):
    m = make_conv()
    m.call_mode = mode
    calls = []
    m.register_full_backward_hook(lambda module, grad_in, grad_out: calls.append(module) and None)
    x = clip().requires_grad_()
    outs = [o for o in (m(inp) for inp in _inputs_for(mode, x)) if o is not None]
    sum(o.sum() for o in outs).backward()
    assert len(calls) == len(outs)
