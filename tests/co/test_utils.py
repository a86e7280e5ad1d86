"""``co.utils``, ``co.logging`` and ``co.__about__``, the helpers ``continual-inference`` exposes
under the same names: ``temporary_parameter``, ``getLogger(log_once=True)``, the ``__about__``
fields."""

from __future__ import annotations

import functools
import logging
import types

import pytest
import torch
from torch import nn

import cozoo
from cozoo.co import __about__
from cozoo.co import logging as co_logging
from cozoo.co.utils import (
    flatten,
    function_repr,
    neginf_like,
    num_from,
    rgetattr,
    rsetattr,
    temporary_parameter,
)


def make_obj() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        a=1, inner=types.SimpleNamespace(b=2, deeper=types.SimpleNamespace(c=3))
    )


# --------------------------------------------------------------------------------------------
# rgetattr / rsetattr
# --------------------------------------------------------------------------------------------
def test_rgetattr_follows_dotted_paths_and_defaults():
    obj = make_obj()
    assert rgetattr(obj, "a") == 1
    assert rgetattr(obj, "inner.deeper.c") == 3
    assert rgetattr(obj, "inner.missing.c", "fallback") == "fallback"
    assert rgetattr(obj, "inner.missing", None) is None
    with pytest.raises(AttributeError):
        rgetattr(obj, "inner.missing")


def test_rsetattr_sets_along_dotted_paths():
    obj = make_obj()
    rsetattr(obj, "inner.deeper.c", 30)
    rsetattr(obj, "a", 10)
    assert obj.inner.deeper.c == 30 and obj.a == 10
    with pytest.raises(AttributeError):
        rsetattr(obj, "nope.c", 1)


# --------------------------------------------------------------------------------------------
# temporary_parameter
# --------------------------------------------------------------------------------------------
def test_temporary_parameter_restores_existing_attribute():
    obj = make_obj()
    with temporary_parameter(obj, "a", 42) as yielded:
        assert yielded is obj
        assert obj.a == 42
    assert obj.a == 1


def test_temporary_parameter_deletes_new_attribute():
    obj = make_obj()
    with temporary_parameter(obj, "fresh", "x"):
        assert obj.fresh == "x"
    assert not hasattr(obj, "fresh")


def test_temporary_parameter_dotted_paths():
    obj = make_obj()
    with temporary_parameter(obj, "inner.deeper.c", -3):
        assert obj.inner.deeper.c == -3
    assert obj.inner.deeper.c == 3
    # a new attribute below an existing parent is deleted from that parent again
    with temporary_parameter(obj, "inner.fresh", 5):
        assert obj.inner.fresh == 5
    assert not hasattr(obj.inner, "fresh")
    # a missing parent: error, nothing changed
    with pytest.raises(AttributeError):
        with temporary_parameter(obj, "nope.c", 1):
            pass
    assert not hasattr(obj, "nope")


def test_temporary_parameter_is_exception_safe():
    obj = make_obj()
    with pytest.raises(KeyError):
        with temporary_parameter(obj, "inner.b", 20):
            with temporary_parameter(obj, "fresh", 1):
                assert obj.inner.b == 20 and obj.fresh == 1
                raise KeyError("boom")
    assert obj.inner.b == 2
    assert not hasattr(obj, "fresh")


def test_temporary_parameter_on_modules():
    net = nn.Sequential(nn.Conv1d(2, 2, 3, padding=1))
    x = torch.randn(1, 2, 6)
    assert net(x).shape[-1] == 6
    with temporary_parameter(net, "0.padding", (0,)):  # child modules are dotted attributes
        assert net[0].padding == (0,)
        assert net(x).shape[-1] == 4
    assert net[0].padding == (1,)
    assert net(x).shape[-1] == 6


# --------------------------------------------------------------------------------------------
# flatten / num_from / function_repr / neginf_like
# --------------------------------------------------------------------------------------------
def test_flatten_nested_sequences():
    t = torch.zeros(2)
    nested = [1, [None, (2, [3, None])], [], (t,), "ab"]
    assert flatten(nested) == [1, 2, 3, t, "ab"]
    assert flatten(nested, remove_none=False) == [1, None, 2, 3, None, t, "ab"]
    assert flatten((None,)) == []
    assert flatten([[[]]]) == []


def test_num_from():
    assert num_from(3) == 3
    assert num_from((4, 5, 6)) == 4
    assert num_from((4, 5, 6), dim=2) == 6
    assert num_from([7, 8], 1) == 8
    assert num_from(torch.Size([9, 1])) == 9


def named_function(x):
    return x


def test_function_repr():
    assert function_repr(named_function) == "named_function"
    assert function_repr(lambda x: x + 1) == "lambda x: x + 1"
    assert function_repr(functools.partial(named_function)) == "named_function"
    assert function_repr(torch.sum) == "sum"
    assert function_repr(None) == ""


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_neginf_like_float(dtype):
    t = torch.randn(2, 3).to(dtype)
    out = neginf_like(t)
    assert out.shape == t.shape and out.dtype == dtype and out.device == t.device
    assert torch.all(out == float("-inf"))
    assert torch.equal(torch.maximum(out, t), t)  # the identity of max


def test_neginf_like_int():
    t = torch.arange(4, dtype=torch.int32)
    out = neginf_like(t)
    assert out.dtype == torch.int32
    assert torch.all(out == torch.iinfo(torch.int32).min)


# --------------------------------------------------------------------------------------------
# co.logging
# --------------------------------------------------------------------------------------------
@pytest.fixture
def rank_env(monkeypatch):
    """No rank variables from the machine running the tests; returns a setter."""
    for key in co_logging.RANK_ENV_VARS:
        monkeypatch.delenv(key, raising=False)

    def set_rank(key: str, value: str) -> None:
        monkeypatch.setenv(key, value)

    return set_rank


def test_global_rank_from_environment(rank_env):
    assert co_logging.global_rank() == 0
    rank_env("LOCAL_RANK", "3")
    assert co_logging.global_rank() == 3
    rank_env("SLURM_PROCID", "5")  # the global rank wins over the local one
    assert co_logging.global_rank() == 5
    rank_env("RANK", "0")
    assert co_logging.global_rank() == 0


def test_get_logger_logs_on_rank_zero_only(rank_env, caplog):
    name = "cozoo.tests.rank_zero"
    logger = co_logging.getLogger(name)
    with caplog.at_level(logging.INFO, logger=name):
        rank_env("RANK", "1")
        logger.info("from rank one")
        logger.warning("from rank one")
        assert caplog.records == []
        rank_env("RANK", "0")
        logger.info("from rank zero")
    assert [r.getMessage() for r in caplog.records] == ["from rank zero"]
    assert caplog.records[0].name == name
    assert caplog.records[0].pathname == __file__  # the caller, not the adapter


def test_get_logger_log_once(rank_env, caplog):
    name = "cozoo.tests.log_once"
    logger = co_logging.getLogger(name, log_once=True)
    assert co_logging.getLogger(name, log_once=True) is logger
    with caplog.at_level(logging.INFO, logger=name):
        for _ in range(3):
            logger.warning("repeated %d", 1)
        logger.warning("repeated 1")  # the same text
        logger.warning("repeated %d", 2)
        logger.info("repeated 1")  # another level
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages == [
        ("WARNING", "repeated 1"),
        ("WARNING", "repeated 2"),
        ("INFO", "repeated 1"),
    ]


def test_get_logger_without_log_once_repeats(rank_env, caplog):
    name = "cozoo.tests.log_many"
    logger = co_logging.getLogger(name)
    with caplog.at_level(logging.INFO, logger=name):
        for _ in range(3):
            logger.warning("again")
    assert [r.getMessage() for r in caplog.records] == ["again"] * 3


def test_get_logger_respects_levels_and_forwards_logger_attributes(rank_env, caplog):
    name = "cozoo.tests.levels"
    logger = co_logging.getLogger(name, log_once=True)
    with caplog.at_level(logging.WARNING, logger=name):
        logger.info("hidden")  # below the level: not remembered as seen
    with caplog.at_level(logging.INFO, logger=name):
        logger.info("hidden")
    assert [r.getMessage() for r in caplog.records] == ["hidden"]
    assert logger.name == name
    assert logger.handlers is logging.getLogger(name).handlers


# --------------------------------------------------------------------------------------------
# __about__
# --------------------------------------------------------------------------------------------
ABOUT_FIELDS = [
    "__version__",
    "__author__",
    "__author_email__",
    "__license__",
    "__copyright__",
    "__homepage__",
    "__docs__",
]


UNPUBLISHED = {"__author_email__", "__homepage__"}  # empty until the project is published


@pytest.mark.parametrize("field", ABOUT_FIELDS)
def test_about_fields_are_strings(field):
    value = getattr(__about__, field)
    assert isinstance(value, str)
    assert value or field in UNPUBLISHED


def test_about_values():
    assert __about__.__version__ == cozoo.__version__
    assert __about__.__license__ == "Apache-2.0"
