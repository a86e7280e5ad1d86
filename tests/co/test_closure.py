"""Lambda and the closure factories (Identity, Add, Multiply, Constant, Zero, One)."""

import functools

import pytest
import torch
from torch import nn

from cozoo.co.closure import (
    Add,
    Constant,
    Identity,
    Lambda,
    Multiply,
    One,
    Zero,
    function_repr,
)
from cozoo.co.module import call_mode


def global_always42(x):
    return torch.ones_like(x) * 42


def _multiply(x, factor):
    return x * factor


class Always42:
    """A functor (callable object without ``__name__``)."""

    def __call__(self, x):
        return torch.ones_like(x) * 42


def clip(shape=(2, 3, 5, 4), seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def all_modes(module, x):
    """(forward, forward_steps, stacked forward_step) outputs for a clip ``x``."""
    fwd = module.forward(x)
    steps = module.forward_steps(x)
    stepped = torch.stack([module.forward_step(x[:, :, t]) for t in range(x.shape[2])], 2)
    return fwd, steps, stepped


# ---- Add / Multiply ---------------------------------------------------------------------------
CONSTANTS = [5, 3.14, torch.tensor([2.0, 3.0, -1.0, 0.5])]


@pytest.mark.parametrize("constant", CONSTANTS, ids=["int", "float", "tensor"])
@pytest.mark.parametrize(
    "factory, op", [(Add, torch.add), (Multiply, torch.mul)], ids=["add", "multiply"]
)
def test_add_multiply_all_modes(factory, op, constant):
    module = factory(constant)
    x = clip()
    target = op(x, constant)
    for out in all_modes(module, x):
        assert torch.equal(out, target)
    assert module.delay == 0 and module.receptive_field == 1
    assert module.get_state() is None


def test_add_tensor_constant_per_step_broadcast():
    """The reference test: a (1, 1, 1, 2) constant on a (1, 1, 2) step."""
    x = torch.ones((1, 1, 2, 2))
    constants = torch.tensor([[[[2.0, 3.0]]]])
    assert torch.equal(Add(constants).forward_step(x[:, :, 0]), torch.tensor([[[3.0, 4.0]]]))
    assert torch.equal(Multiply(constants).forward_step(x[:, :, 0]), torch.tensor([[[2.0, 3.0]]]))


def test_tensor_constant_moves_with_module_but_is_not_saved():
    module = Add(torch.tensor([1.0, 2.0]))
    assert dict(module.state_dict()) == {}
    module.double()
    out = module.forward(torch.zeros(1, 1, 3, 2, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert torch.equal(out[0, 0, 0], torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_constant_rejects_non_numbers():
    with pytest.raises(TypeError, match="int, a float or a tensor"):
        Add("5")


# ---- Identity / Constant / Zero / One ---------------------------------------------------------
@pytest.mark.parametrize(
    "module, expected",
    [
        (Identity(), lambda x: x),
        (Identity(7, some_kwarg=3), lambda x: x),
        (Constant(2.5), lambda x: torch.full_like(x, 2.5)),
        (
            Constant(torch.tensor([1.0, 2.0, 3.0, 4.0])),
            lambda x: torch.ones_like(x) * torch.arange(1.0, 5.0),
        ),
        (Zero(), torch.zeros_like),
        (One(), torch.ones_like),
    ],
    ids=["identity", "identity_args", "constant", "constant_tensor", "zero", "one"],
)
def test_constant_maps(module, expected):
    x = clip()
    for out in all_modes(module, x):
        assert torch.equal(out, expected(x))
    assert module.takes_time and module.delay == 0


# ---- Lambda -----------------------------------------------------------------------------------
def test_lambda_scopes_and_functors():
    x = clip()
    target = torch.ones_like(x) * 42

    def local_always42(x):
        return torch.ones_like(x) * 42

    modules = [
        Lambda(global_always42),
        Lambda(local_always42),
        Lambda.build_from(lambda x: torch.ones_like(x) * 42),
        Lambda(Always42()),
        Lambda(functools.partial(_multiply, factor=0.0), takes_time=True),
    ]
    for module in modules[:4]:
        for out in all_modes(module, x):
            assert torch.equal(out, target)
        assert torch.equal(module(x), target)
    for out in all_modes(modules[4], x):
        assert torch.equal(out, torch.zeros_like(x))


def test_lambda_takes_time_false_gets_steps():
    seen = []

    def fn(x):
        seen.append(tuple(x.shape))
        return x.flip(1)

    module = Lambda(fn)
    x = clip()
    fwd, steps, stepped = all_modes(module, x)
    assert set(seen) == {(2, 3, 4)}  # always one step, never a clip
    for out in (fwd, steps, stepped):
        assert torch.equal(out, x.flip(1))


def test_lambda_takes_time_true_gets_clips():
    seen = []

    def fn(x):
        seen.append(tuple(x.shape))
        return x.cumsum(2)  # mixes time: only valid on whole clips

    module = Lambda(fn, takes_time=True)
    x = clip()
    assert torch.equal(module.forward(x), x.cumsum(2))
    assert torch.equal(module.forward_steps(x), x.cumsum(2))
    assert torch.equal(module.forward_step(x[:, :, 0]), x[:, :, 0])
    assert seen == [(2, 3, 5, 4), (2, 3, 5, 4), (2, 3, 1, 4)]


def test_lambda_batch_mixing_function_per_step():
    """A step function may use the batch dim (here a mean over it): forward stays per step."""
    module = Lambda(lambda x: x - x.mean(0, keepdim=True))
    x = clip()
    fwd, steps, stepped = all_modes(module, x)
    assert torch.allclose(fwd, x - x.mean(0, keepdim=True))
    assert torch.equal(fwd, steps) and torch.equal(fwd, stepped)


def test_mode_specific_functions():
    module = Lambda(
        lambda x: x + 1,
        forward_only_fn=lambda x: x + 2,
        forward_step_only_fn=lambda x: x + 3,
        forward_steps_only_fn=lambda x: x + 4,
    )
    x = clip()
    assert torch.equal(module.forward(x), x + 2)
    assert torch.equal(module.forward_steps(x), x + 4)
    assert torch.equal(module.forward_step(x[:, :, 0]), x[:, :, 0] + 3)
    with call_mode("forward_steps"):
        assert torch.equal(module(x), x + 4)
    # fn is used in the modes without their own function
    partial = Lambda(lambda x: x * 2, forward_step_only_fn=lambda x: x * 0)
    assert torch.equal(partial.forward(x), x * 2)
    assert torch.equal(partial.forward_steps(x), x * 2)
    assert torch.equal(partial.forward_step(x[:, :, 1]), torch.zeros_like(x[:, :, 1]))
    # all three without fn
    only = Lambda(None, torch.neg, torch.abs, torch.exp)
    assert torch.equal(only.forward(x), -x)
    assert torch.equal(only.forward_step(x[:, :, 0]), x[:, :, 0].abs())
    assert torch.equal(only.forward_steps(x), x.exp())


def test_lambda_needs_functions():
    with pytest.raises(ValueError, match="give fn"):
        Lambda()
    with pytest.raises(ValueError, match="give fn"):
        Lambda(forward_only_fn=torch.neg, forward_step_only_fn=torch.neg)
    with pytest.raises(TypeError, match="callable"):
        Lambda(3)


def test_module_fn_is_registered():
    linear = nn.Linear(4, 2)
    module = Lambda(linear)
    assert module.fn is linear
    assert set(module.state_dict()) == {"fn.weight", "fn.bias"}
    assert list(module.parameters()) == list(linear.parameters())
    x = clip()
    fwd, steps, stepped = all_modes(module, x)
    assert torch.allclose(fwd, linear(x))
    assert torch.allclose(steps, fwd) and torch.allclose(stepped, fwd)


def test_lambda_is_stateless():
    module = Lambda(torch.tanh)
    x = clip()
    assert module.forward_step(x[:, :, 0], update_state=False) is not None
    assert module.forward_steps(x[:, :, :0]) is None
    assert module.get_state() is None
    module.clean_state(streams=[1])
    module.set_state(module.get_state())
    fwd, steps, stepped = all_modes(module, x)
    assert torch.equal(steps, stepped) and torch.equal(fwd, torch.tanh(x))
    assert module.receptive_field == 1 and module.stride == (1,) and module.padding == (0,)


def test_lambda_forward_needs_a_step():
    with pytest.raises(ValueError, match="at least one step"):
        Lambda(torch.tanh).forward(torch.zeros(1, 2, 0))


# ---- reprs ------------------------------------------------------------------------------------
def test_reprs():
    def local_fn(x):
        return x

    assert repr(Lambda(global_always42)) == "Lambda(global_always42)"
    assert repr(Lambda(local_fn)) == "Lambda(local_fn)"
    assert (
        repr(Lambda(lambda x: x + 1, lambda x: x + 2, lambda x: x * 3, lambda x: x - 1))
        == "Lambda(lambda x: x + 1, lambda x: x + 2, lambda x: x * 3, lambda x: x - 1)"
    )
    assert repr(Lambda(functools.partial(_multiply, factor=2), takes_time=True)) == (
        "Lambda(_multiply, takes_time=True)"
    )
    assert repr(Multiply(2)) == "Lambda(_multiply, takes_time=True)"
    assert repr(Add(torch.ones(2))) == "Lambda(_add, takes_time=True)"
    assert repr(Constant(3)) == "Lambda(_constant, takes_time=True)"
    assert repr(Identity()) == "Lambda(_identity, takes_time=True)"
    assert repr(Zero()) == "Lambda(zeros_like, takes_time=True)"
    assert repr(One()) == "Lambda(ones_like, takes_time=True)"
    assert repr(Lambda(Always42())) == "Lambda(Always42)"
    assert repr(Lambda(nn.ReLU())) == "Lambda(ReLU())"
    # a skipped argument switches to keywords, so the repr stays unambiguous
    assert repr(Lambda(torch.relu, forward_step_only_fn=torch.tanh)) == (
        "Lambda(relu, forward_step_only_fn=tanh)"
    )
    assert repr(Lambda(None, torch.neg, torch.abs, torch.exp)) == (
        "Lambda(forward_only_fn=neg, forward_step_only_fn=abs, forward_steps_only_fn=exp)"
    )


def test_function_repr_picks_the_right_lambda():
    fns = [lambda x: x, lambda y: (lambda z: z * 2)(y)]
    assert function_repr(fns[0]) == "lambda x: x"
    assert function_repr(fns[1]) == "lambda y: (lambda z: z * 2)(y)"
    # fmt: off
    multi_line = [
        lambda a: a
        + 1
    ]
    # fmt: on
    assert function_repr(multi_line[0]) == "lambda a: a + 1"
    hidden = eval("lambda q: q")  # no source file
    assert function_repr(hidden) == "<lambda>"
