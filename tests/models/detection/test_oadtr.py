"""OadTR and OadTR-b1/b2: the regular networks, served on a stream by recomputing the window
(``SlidingWindowNetwork``), equal their clip forward; shapes, parameters and errors."""

from __future__ import annotations

import pytest
import torch

from cozoo.models import create_model, get_model_weights
from cozoo.models.detection import OadTRNetwork, SlidingWindowNetwork
from cozoo.models.detection._published import UNUSED_PUBLISHED_PARAMS, num_params

TINY = dict(feature_dim=12, embed_dim=16, heads=2, ff_dim=16, window=8)
BASELINES = ("oadtr", "oadtr_b1", "oadtr_b2")


@pytest.fixture(scope="module")
def stream() -> torch.Tensor:
    return torch.randn(3, 12, 40, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("name", BASELINES)
def test_steps_chunks_and_forward_agree(name, stream):
    torch.manual_seed(0)
    model = create_model(name, **TINY).eval()
    assert isinstance(model, SlidingWindowNetwork)
    with torch.no_grad():
        full = model(stream)  # every complete window
        steps = [model.forward_step(stream[:, :, t]) for t in range(stream.shape[2])]
        model.clean_state()
        chunks = [model.forward_steps(stream[:, :, a:b]) for a, b in ((0, 3), (3, 20), (20, 40))]
        per_window = torch.stack([model.network(stream[:, :, t - 7 : t + 1]) for t in (7, 39)], 2)
    assert full.shape == (3, 22, 33)
    assert all(s is None for s in steps[:7])
    torch.testing.assert_close(torch.stack(steps[7:], 2), full, rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([c for c in chunks if c is not None], 2), full)
    torch.testing.assert_close(full[:, :, [0, -1]], per_window)


def test_per_stream_reset_and_update_state_false(stream):
    torch.manual_seed(0)
    model = create_model("oadtr_b1", **TINY).eval()
    with torch.no_grad():
        for t in range(10):
            model.forward_step(stream[:, :, t])
        peek = model.forward_step(stream[:, :, 10], update_state=False)
        torch.testing.assert_close(model.forward_step(stream[:, :, 10]), peek)
        model.clean_state(streams=[2])
        outs = [model.forward_step(stream[:, :, t]) for t in range(11, 19)]
        alone = model.network(stream[2:, :, 11:19])
    assert torch.isnan(outs[0][2]).all() and not torch.isnan(outs[0][:2]).any()
    torch.testing.assert_close(outs[-1][2:], alone)


def test_oadtr_anticipates_the_next_steps():
    torch.manual_seed(0)
    network = OadTRNetwork(encoder_layers=3, decoder_layers=5, queries=8, **TINY).eval()
    logits, future = network.forward_with_future(torch.randn(4, 12, 8))
    assert logits.shape == (4, 22) and future.shape == (4, 8, 22)
    b1 = OadTRNetwork(encoder_layers=1, decoder_layers=0, **TINY)
    assert b1.forward_with_future(torch.randn(2, 12, 8))[1] is None
    with pytest.raises(
        ValueError, match=r"OadTRNetwork: expected a window \(N, D=12, T=8\), got \(2, 12, 7\)"
    ):
        b1(torch.randn(2, 12, 7))
    with pytest.raises(ValueError, match="at least window=8 steps"):
        create_model("oadtr_b1", **TINY)(torch.randn(2, 12, 7))


@pytest.mark.parametrize("name", BASELINES)
def test_parameters_are_the_published_counts_less_the_unused_ones(name):
    published = {"oadtr": (74_709_036, 75_757_612), "oadtr_b1": (9_560_108, 10_608_684),
                 "oadtr_b2": (15_858_732, 16_907_308)}[name]  # fmt: skip
    for dim, count in zip((3072, 4096), published):
        net = create_model(name, feature_dim=dim).to("meta")
        built = sum(p.numel() for p in net.parameters())
        assert built == num_params(name, dim) == count - UNUSED_PUBLISHED_PARAMS[name]
    for member in get_model_weights(name):
        assert member.meta.num_params == num_params(name, member.meta.model_kwargs["feature_dim"])
