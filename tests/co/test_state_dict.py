"""Flat state dicts (keys without their purely numeric components, e.g. ``"0.1.conv.weight"``
-> ``"conv.weight"``) and ``PaddingMode``, as in ``continual-inference``."""

from __future__ import annotations

import io
from collections import OrderedDict

import pytest
import torch
from torch import nn

from cozoo import co
from cozoo.co.state_dicts import (
    FlattenableStateDict,
    PaddingMode,
    flat_state_dict,
    flatten_key,
    load_state_dict,
    state_dict,
)


class FSeq(FlattenableStateDict, nn.Sequential):
    """A container with the mixin, as the owner wires it into the ``co`` containers."""


def nested_net() -> FSeq:
    """Keys ``0.0.*``, ``1.c1.*``, ``1.bn.*``: flat keys ``weight``, ``c1.*``, ``bn.*``."""
    return FSeq(
        FSeq(nn.Conv1d(2, 3, 3)),
        FSeq(OrderedDict(c1=nn.Conv1d(3, 4, 1), bn=nn.BatchNorm1d(4))),
    )


def other_nesting() -> FSeq:
    """The same tensors under a different nesting: ``0.*``, ``1.0.c1.*``, ``1.0.bn.*``."""
    return FSeq(
        nn.Conv1d(2, 3, 3),
        FSeq(FSeq(OrderedDict(c1=nn.Conv1d(3, 4, 1), bn=nn.BatchNorm1d(4)))),
    )


LONG_KEYS = [
    "0.0.weight",
    "0.0.bias",
    "1.c1.weight",
    "1.c1.bias",
    "1.bn.weight",
    "1.bn.bias",
    "1.bn.running_mean",
    "1.bn.running_var",
    "1.bn.num_batches_tracked",
]
FLAT_KEYS = [
    "weight",
    "bias",
    "c1.weight",
    "c1.bias",
    "bn.weight",
    "bn.bias",
    "bn.running_mean",
    "bn.running_var",
    "bn.num_batches_tracked",
]


def randomize_(net: nn.Module) -> nn.Module:
    with torch.no_grad():
        for t in list(net.parameters()) + list(net.buffers()):
            t.copy_(torch.randint(1, 100, t.shape).to(t.dtype))
    return net


def assert_same_tensors(a: nn.Module, b: nn.Module) -> None:
    ta = list(a.parameters()) + list(a.buffers())
    tb = list(b.parameters()) + list(b.buffers())
    assert len(ta) == len(tb)
    for x, y in zip(ta, tb):
        assert torch.equal(x, y)


# --------------------------------------------------------------------------------------------
# Key rule
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, short",
    [
        ("0.0.weight", "weight"),
        ("1.c1.weight", "c1.weight"),
        ("0.1.conv.weight", "conv.weight"),
        ("block.2.bn.running_mean", "block.bn.running_mean"),
        ("layer10.weight", "layer10.weight"),  # only purely numeric components
        ("weight", "weight"),
        ("0.3", "3"),  # the tensor's own name is kept (ParameterList)
    ],
)
def test_flatten_key(key, short):
    assert flatten_key(key) == short


# --------------------------------------------------------------------------------------------
# state_dict
# --------------------------------------------------------------------------------------------
def test_keys_without_flattening_are_torch_keys():
    net = nested_net()
    sd = net.state_dict()
    assert list(sd.keys()) == LONG_KEYS
    assert list(sd.keys()) == list(nn.Module.state_dict(net).keys())


def test_keys_with_flattening_nested_containers():
    net = randomize_(nested_net())
    long = net.state_dict()
    flat = net.state_dict(flatten=True)
    assert list(flat.keys()) == FLAT_KEYS
    for lk, fk in zip(LONG_KEYS, FLAT_KEYS):
        assert torch.equal(flat[fk], long[lk])
    assert not any(v.requires_grad for v in flat.values())  # detached as in torch
    assert hasattr(flat, "_metadata") and "1.bn" in flat._metadata  # versions kept (long keys)
    # the module-level functions give the same
    assert list(state_dict(net, flatten=True).keys()) == FLAT_KEYS
    assert list(state_dict(net).keys()) == LONG_KEYS


def test_flattening_with_prefix_keep_vars_and_destination():
    net = nested_net()
    flat = net.state_dict(prefix="model.", keep_vars=True, flatten=True)
    assert list(flat.keys()) == ["model." + k for k in FLAT_KEYS]
    assert flat["model.weight"] is net[0][0].weight  # keep_vars: the parameters themselves
    destination = OrderedDict(other=torch.zeros(1))
    out = state_dict(net, destination=destination, prefix="m.", flatten=True)
    assert out is destination
    assert list(out.keys()) == ["other"] + ["m." + k for k in FLAT_KEYS]


def test_collision_warns_and_returns_normal_dict():
    net = FSeq(nn.Conv1d(2, 2, 1), FSeq(nn.Conv1d(2, 2, 1)))  # "0.weight" and "1.0.weight"
    with pytest.warns(UserWarning, match="Unable to flatten") as record:
        sd = net.state_dict(flatten=True)
    assert list(sd.keys()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias"]
    assert record[0].filename == __file__  # attributed to the caller
    with pytest.warns(UserWarning, match="Unable to flatten"):
        assert list(state_dict(net, flatten=True).keys()) == list(sd.keys())


def test_collision_with_destination_keys_warns():
    net = FSeq(nn.Linear(2, 2))
    destination = OrderedDict(weight=torch.zeros(1))
    with pytest.warns(UserWarning, match="destination"):
        out = net.state_dict(destination=destination, flatten=True)
    assert list(out.keys()) == ["weight", "0.weight", "0.bias"]


def test_torch_call_forms_still_work():
    net = nested_net()
    with pytest.warns(FutureWarning):  # torch's deprecated positional form
        sd = net.state_dict(None, "p.", True)
    assert list(sd.keys()) == ["p." + k for k in LONG_KEYS]
    assert sd["p.0.0.weight"] is net[0][0].weight
    # positional form combined with flatten
    flat = net.state_dict(None, "p.", flatten=True)
    assert list(flat.keys()) == ["p." + k for k in FLAT_KEYS]
    with pytest.raises(TypeError):
        net.state_dict(flatten=True, bogus=1)


# --------------------------------------------------------------------------------------------
# load_state_dict
# --------------------------------------------------------------------------------------------
def test_load_flattened_into_same_and_other_nesting():
    src = randomize_(nested_net())
    flat = src.state_dict(flatten=True)

    same = nested_net()
    assert not torch.equal(same[0][0].weight, src[0][0].weight)
    result = same.load_state_dict(flat, flatten=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert_same_tensors(same, src)

    other = other_nesting()
    load_state_dict(other, flat, flatten=True)
    assert_same_tensors(other, src)
    x = torch.randn(2, 2, 7)
    src.eval(), other.eval()
    assert torch.equal(src(x), other(x))


def test_load_flattened_round_trip_through_file():
    src = randomize_(nested_net())
    buffer = io.BytesIO()
    torch.save(src.state_dict(flatten=True), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    dst = other_nesting()
    dst.load_state_dict(loaded, flatten=True)
    assert_same_tensors(dst, src)


def test_load_flattened_without_flag_fails_strict():
    flat = randomize_(nested_net()).state_dict(flatten=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        nested_net().load_state_dict(flat)


def test_load_flattened_strict_reports_missing_and_unexpected():
    flat = randomize_(nested_net()).state_dict(flatten=True)
    del flat["c1.bias"]
    flat["extra"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="1.c1.bias"):
        nested_net().load_state_dict(flat, flatten=True)
    result = nested_net().load_state_dict(flat, strict=False, flatten=True)
    assert result.missing_keys == ["1.c1.bias"]
    assert result.unexpected_keys == ["extra"]


def test_load_flatten_accepts_long_keys_too():
    src = randomize_(nested_net())
    dst = nested_net()
    dst.load_state_dict(src.state_dict(), flatten=True)  # long keys pass unchanged
    assert_same_tensors(dst, src)


def test_load_into_colliding_module_warns_and_loads_normally():
    src = randomize_(FSeq(nn.Conv1d(2, 2, 1), FSeq(nn.Conv1d(2, 2, 1))))
    dst = FSeq(nn.Conv1d(2, 2, 1), FSeq(nn.Conv1d(2, 2, 1)))
    with pytest.warns(UserWarning, match="collide"):
        dst.load_state_dict(src.state_dict(), flatten=True)
    assert_same_tensors(dst, src)


def test_load_assign_keyword_and_return_value():
    src = randomize_(nested_net())
    flat = src.state_dict(flatten=True)
    dst = nested_net()
    result = dst.load_state_dict(flat, flatten=True, assign=True)
    assert tuple(result) == ([], [])
    assert dst[0][0].weight.data_ptr() == flat["weight"].data_ptr()  # assigned, not copied
    plain = nested_net()
    result = plain.load_state_dict(src.state_dict(), True, assign=True)
    assert result.missing_keys == []
    assert_same_tensors(plain, src)


# --------------------------------------------------------------------------------------------
# Context manager
# --------------------------------------------------------------------------------------------
def test_context_manager_flattens_save_and_load():
    src = randomize_(nested_net())
    dst = other_nesting()
    assert not flat_state_dict.flatten
    with flat_state_dict as ctx:
        assert ctx is flat_state_dict and flat_state_dict.flatten
        sd = src.state_dict()
        assert list(sd.keys()) == FLAT_KEYS
        dst.load_state_dict(sd)
        assert list(state_dict(src).keys()) == FLAT_KEYS
    assert not flat_state_dict.flatten
    assert_same_tensors(dst, src)
    assert list(src.state_dict().keys()) == LONG_KEYS  # off again after the block


def test_context_manager_nests_and_is_exception_safe():
    net = nested_net()
    with pytest.raises(ValueError):
        with flat_state_dict:
            with flat_state_dict:
                pass
            assert list(net.state_dict().keys()) == FLAT_KEYS  # still inside the outer block
            raise ValueError
    assert not flat_state_dict.flatten
    assert list(net.state_dict().keys()) == LONG_KEYS


def test_context_manager_leaves_containers_inside_plain_modules_alone():
    """Only root calls flatten: a torch parent never calls its children's load_state_dict,
    so flattening their part would make its own state dict unloadable."""

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nested_net()

    src, dst = randomize_(Plain()), Plain()
    with flat_state_dict:
        sd = src.state_dict()
        assert list(sd.keys()) == ["body." + k for k in LONG_KEYS]
        dst.load_state_dict(sd)
        assert list(src.body.state_dict().keys()) == FLAT_KEYS  # the container as root
    assert_same_tensors(dst, src)


def test_plain_torch_modules_via_functions():
    src = randomize_(nn.Sequential(nn.Sequential(nn.Linear(2, 3)), nn.Sequential()))
    flat = state_dict(src, flatten=True)
    assert list(flat.keys()) == ["weight", "bias"]
    dst = nn.Sequential(nn.Linear(2, 3))
    load_state_dict(dst, flat, flatten=True)
    assert_same_tensors(dst, src)


# --------------------------------------------------------------------------------------------
# The co containers
# --------------------------------------------------------------------------------------------
def co_net() -> co.Sequential:
    return co.Sequential(
        co.Sequential(co.Conv1d(2, 3, 3)),
        co.Sequential(OrderedDict(c1=co.Conv1d(3, 4, 1), c2=co.Conv1d(4, 4, 1))),
    )


CO_FLAT = ["weight", "bias", "c1.weight", "c1.bias", "c2.weight", "c2.bias"]


def test_co_containers_through_functions():
    src = randomize_(co_net())
    assert list(state_dict(src).keys())[:2] == ["0.0.weight", "0.0.bias"]
    flat = state_dict(src, flatten=True)
    assert list(flat.keys()) == CO_FLAT
    dst = co.Sequential(
        co.Conv1d(2, 3, 3), co.Sequential(OrderedDict(c1=co.Conv1d(3, 4, 1), c2=co.Conv1d(4, 4, 1)))
    )
    load_state_dict(dst, flat, flatten=True)
    assert_same_tensors(dst, src)


WIRED = isinstance(co.Sequential(), FlattenableStateDict)


@pytest.mark.skipif(not WIRED, reason="FlattenableStateDict not yet mixed into co containers")
def test_co_containers_methods_and_context_manager():
    src = randomize_(co_net())
    assert list(src.state_dict(flatten=True).keys()) == CO_FLAT
    with co.flat_state_dict:
        assert list(src.state_dict().keys()) == CO_FLAT
    dst = co_net()
    dst.load_state_dict(src.state_dict(flatten=True), flatten=True)
    assert_same_tensors(dst, src)
    br = co.BroadcastReduce(co.Conv1d(2, 2, 3, padding=1), co.Conv1d(2, 2, 1))
    with pytest.warns(UserWarning, match="Unable to flatten"):
        assert "0.weight" in br.state_dict(flatten=True)
    assert list(co.Sequential(br).state_dict().keys())[0] == "0.0.weight"


@pytest.mark.skipif(not hasattr(co, "flat_state_dict"), reason="not yet exported from cozoo.co")
def test_exports():
    assert co.flat_state_dict is flat_state_dict
    assert co.state_dict is state_dict
    assert co.load_state_dict is load_state_dict
    assert co.PaddingMode is PaddingMode


# --------------------------------------------------------------------------------------------
# PaddingMode
# --------------------------------------------------------------------------------------------
def test_padding_mode_values():
    assert PaddingMode.ZEROS.value == "zeros"
    assert PaddingMode.REPLICATE.value == "replicate"
    assert PaddingMode.NEG_INF.value == "neg_inf"
    assert [m.name for m in PaddingMode] == ["ZEROS", "REPLICATE", "NEG_INF"]
    assert PaddingMode("neg_inf") is PaddingMode.NEG_INF
    assert PaddingMode.ZEROS == "zeros"  # usable where a string fill is expected
