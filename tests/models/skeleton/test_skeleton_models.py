"""The skeleton family: graph, units, and the continual networks against the regular ones.

Architectures are built narrower (``base_channels=32``) to keep CI fast: the same layers, graph,
strides, paddings and pools, so receptive fields, delays and the equivalences are the published
networks'. BatchNorm statistics are randomised so that no layer is the identity. The
continual-vs-regular comparisons run in float64, where the two agree to ~1e-11 of the logits'
scale: random float32 networks have logits in the thousands and their attention softmaxes
amplify rounding to ~1e-4, which would hide a real error of that size.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from torch import nn

from cozoo.models import create_model, list_models
from cozoo.models.skeleton.graph import KINETICS, NTU, adjacency
from cozoo.models.skeleton.net import CoSkeletonNet
from cozoo.models.skeleton.regular import RegularSkeletonNet
from cozoo.models.skeleton.units import AdaptiveGraphUnit, GraphUnit, SpatialAttentionUnit

NARROW = 32
ARCHS = ("stgcn", "agcn", "str")
CONTINUAL = ("costgcn", "costgcn_mod", "coagcn", "coagcn_mod", "costr", "costr_mod")


def _randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)
    return model.eval()


def _stream(frames: int, seed: int, batch: int = 1, joints: int = 25) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, frames, joints, 2, generator=generator, dtype=torch.float64)


@pytest.fixture(scope="module")
def narrow_models() -> Dict[Tuple[str, bool], CoSkeletonNet]:
    """One narrow continual network per (architecture, mod), published pool, in eval mode."""
    models = {}
    for i, arch in enumerate(ARCHS):
        for mod in (False, True):
            unit = "published" if mod else "clip"
            model = CoSkeletonNet(arch, mod=mod, base_channels=NARROW, adaptive_unit=unit)
            models[arch, mod] = _randomise_norms(model, seed=i).double()
    return models


def _close(got: torch.Tensor, expected: torch.Tensor, rel: float = 1e-9) -> None:
    """Equal up to rounding relative to the largest value (the module docstring: float64)."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=0, atol=rel * max(scale, 1.0))


# ---- the graph ------------------------------------------------------------------------------
def test_ntu_graph_tables():
    a = adjacency("ntu")
    assert a.shape == (3, 25, 25) and a.dtype == np.float64
    np.testing.assert_array_equal(a[0], np.eye(25))
    assert (a[1] != 0).sum() == 24 and (a[2] != 0).sum() == 24
    x = np.arange(25.0)[None, :] + 1  # joint w carries the value w + 1
    parents = x @ a[1]
    for child, parent in NTU.inward:
        assert parents[0, child] == parent + 1
    assert parents[0, NTU.root] == 0  # the root has no parent
    children_mean = x @ a[2]
    root_children = NTU.children(20)
    assert sorted(root_children) == [1, 2, 4, 8]  # spine mid, neck, both shoulders
    np.testing.assert_allclose(a[2][root_children, 20], 0.25)
    assert children_mean[0, 20] == pytest.approx(np.mean([c + 1 for c in root_children]))
    leaves = [j for j in range(25) if not NTU.children(j)]
    assert all(children_mean[0, j] == 0 for j in leaves)
    assert NTU.bones[-1] == (20, 20) and len(NTU.bones) == 25


def test_kinetics_graph_is_rooted_at_the_neck_and_its_bones_at_the_nose():
    a = adjacency("kinetics")
    assert a.shape == (3, 18, 18) and KINETICS.root == 1
    assert KINETICS.parent(1) == -1 and KINETICS.parent(0) == 1
    assert KINETICS.bones[0] == (0, 0) and KINETICS.bones[1] == (1, 0)


# ---- the units ------------------------------------------------------------------------------
def _unit_input(channels: int = 4, frames: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(3, channels, frames, 25, generator=torch.Generator().manual_seed(seed))


def test_graph_unit_is_the_sum_of_three_branch_convs_over_the_graph():
    unit = _randomise_norms(GraphUnit(4, 8, adjacency("ntu")))
    nn.init.uniform_(unit.graph_attn, 0.5, 1.5)
    x = _unit_input()
    edges = unit.A * unit.graph_attn
    z = sum(
        torch.einsum("oc,nctv,vw->notw", conv.weight[:, :, 0, 0], x, edges[i])
        + conv.bias[None, :, None, None]
        for i, conv in enumerate(unit.g_conv)
    )
    expected = torch.relu(unit.bn(z) + unit.gcn_residual(x))
    with torch.no_grad():
        _close(unit(x), expected, rel=2e-5)


@pytest.mark.parametrize("in_channels", [4, 8], ids=["down", "identity"])
def test_a_folded_graph_unit_steps_as_the_unit(in_channels: int):
    """``fold_batch_norm_`` (called by ``co.fuse_batch_norm``) gives the unit the two-matmul
    inference step of ``folded.py``: equal to its ``forward`` per frame; gradients still flow
    through the unfolded unit."""
    unit = _randomise_norms(GraphUnit(in_channels, 8, adjacency("ntu"))).double()
    nn.init.uniform_(unit.graph_attn, 0.5, 1.5)
    x = _unit_input(in_channels).double()
    assert unit.folded_weight is None
    unit.fold_batch_norm_()
    assert unit.folded_weight.shape == ((4 if in_channels != 8 else 3) * 8, in_channels)
    assert "folded_weight" not in unit.state_dict()  # a deployment form, never saved
    with torch.no_grad():
        folded = torch.stack([unit.forward_step(x[:, :, t]) for t in range(x.shape[2])], 2)
        _close(folded, unit(x))
    step = unit.forward_step(x[:, :, 0].clone().requires_grad_())
    step.sum().backward()


def test_published_adaptive_unit_mixes_no_joints_and_ignores_its_embeddings():
    unit = _randomise_norms(AdaptiveGraphUnit(4, 8, adjacency("ntu"), "published"))
    nn.init.uniform_(unit.graph_attn, 0.5, 1.5)
    x = _unit_input()
    edges = unit.A + unit.graph_attn
    closed = sum(
        conv(x * (1 + edges[i].sum(-1))[None, None, None, :]) for i, conv in enumerate(unit.g_conv)
    )
    with torch.no_grad():
        expected = torch.relu(unit.bn(closed) + unit.gcn_residual(x))
        _close(unit(x), expected, rel=2e-5)
        for conv in (*unit.a_conv, *unit.b_conv):
            nn.init.normal_(conv.weight, 0, 3.0)
        _close(unit(x), expected, rel=2e-5)
        # one joint's input reaches no other joint (up to the rounding of the softmax rows)
        y = x.clone()
        y[..., 7] += 1.0
        changed = (unit(y) - unit(x)).abs().amax((0, 1, 2))
        assert changed[torch.arange(25) != 7].max() < 1e-5 * changed[7]


def test_corrected_adaptive_unit_is_the_clip_unit_applied_per_frame():
    clip_unit = _randomise_norms(AdaptiveGraphUnit(4, 8, adjacency("ntu"), "clip"))
    corrected = AdaptiveGraphUnit(4, 8, adjacency("ntu"), "corrected").eval()
    corrected.load_state_dict(clip_unit.state_dict())
    x = _unit_input()
    with torch.no_grad():
        per_frame = torch.cat([clip_unit(x[:, :, t : t + 1]) for t in range(x.shape[2])], 2)
        _close(corrected(x), per_frame, rel=2e-5)
        # the clip unit's map spans the frames, so it differs from the per-frame one
        assert not torch.allclose(clip_unit(x), per_frame, atol=1e-4)


@pytest.mark.parametrize("in_channels, out_channels", [(32, 32), (32, 64)])
def test_spatial_attention_unit_is_framewise(in_channels: int, out_channels: int):
    unit = _randomise_norms(SpatialAttentionUnit(in_channels, out_channels, adjacency("ntu")))
    x = _unit_input(in_channels, frames=4)
    with torch.no_grad():
        per_frame = torch.stack([unit.forward_step(x[:, :, t]) for t in range(4)], 2)
        _close(unit(x), per_frame, rel=2e-5)


def test_spatial_attention_drop_connect_only_in_training():
    unit = SpatialAttentionUnit(32, 32, adjacency("ntu"))
    x = _unit_input(32, frames=2)
    unit.train()
    torch.manual_seed(0)
    a = unit(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, unit(x))
    unit.eval()
    torch.testing.assert_close(unit(x), unit(x))


# ---- architecture facts ---------------------------------------------------------------------
#: (trainable params at the NTU-60 head, receptive field, delay, stride) per model.
PUBLISHED_SHAPES = {
    "costgcn": (3_141_478, 449, 296, 4),
    "costgcn_mod": (3_141_478, 300, 299, 1),
    "coagcn": (3_469_510, 449, 296, 4),
    "coagcn_mod": (3_469_510, 300, 299, 1),
    "costr": (3_086_470, 449, 296, 4),
    "costr_mod": (3_086_470, 300, 299, 1),
}


@pytest.mark.parametrize("name", CONTINUAL)
def test_published_params_receptive_field_and_delay(name: str):
    model = create_model(name).to("meta")
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (params, model.receptive_field, model.delay, model.stride[0]) == PUBLISHED_SHAPES[name]
    assert (model.pool_size, model.pool_padding) == (
        (220, 0) if name.endswith("_mod") else (75, 19)
    )


def test_kinetics_and_ntu120_heads():
    assert sum(p.numel() for p in create_model("costgcn", num_classes=120).parameters()
               if p.requires_grad) == 3_141_478 + 15_420  # fmt: skip
    kinetics = create_model("costgcn", graph="kinetics", num_classes=400).to("meta")
    assert sum(p.numel() for p in kinetics.parameters() if p.requires_grad) == 3_219_744
    assert kinetics.data_bn.num_features == 2 * 18 * 3


def test_the_registry_lists_every_skeleton_model():
    expected = set(CONTINUAL) | {"stgcn", "stgcn_mod", "agcn", "agcn_mod", "str", "str_mod"}
    assert set(list_models(family="skeleton")) == expected


def test_bad_input_names_the_module_and_the_shapes():
    model = create_model("costgcn_mod", base_channels=NARROW).eval()
    with pytest.raises(
        ValueError, match=r"SkeletonDataNorm.*\(N, 3, T, 25, 2\).*\(1, 3, 30, 18, 2\)"
    ):
        model(torch.zeros(1, 3, 30, 18, 2))
    with pytest.raises(ValueError, match=r"\(N, 3, 25, 2\).*\(1, 3, 25\)"):
        model.forward_step(torch.zeros(1, 3, 25))
    with pytest.raises(ValueError, match="adaptive_unit"):
        create_model("coagcn", adaptive_unit="bogus")
    with pytest.raises(ValueError, match="graph"):
        create_model("costr", graph="coco")


# ---- continual == regular -------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("mod", [False, True], ids=["original", "mod"])
def test_clip_forward_equals_the_regular_network(narrow_models, arch: str, mod: bool):
    """With an unpadded pool the continual network's clip output is the regular network's."""
    model = narrow_models[arch, mod]
    exact = (
        CoSkeletonNet(
            arch, mod=mod, base_channels=NARROW, adaptive_unit=model.adaptive_unit, pool_padding=0
        )
        .eval()
        .double()
    )
    exact.load_state_dict(model.state_dict())
    regular = model.to_regular().eval()
    assert isinstance(regular, RegularSkeletonNet)
    x = _stream(300, seed=3, batch=2)
    with torch.no_grad():
        got = exact(x)
        assert got.shape == (2, 60, 1)
        _close(got[..., 0], regular(x))


@pytest.mark.parametrize("arch", ARCHS)
def test_mod_step_at_t_is_the_regular_mod_network_on_the_last_300_frames(narrow_models, arch):
    model = narrow_models[arch, True]
    regular = model.to_regular().eval()
    x = _stream(306, seed=4)
    with torch.no_grad():
        model.clean_state()
        outputs = [model.forward_step(x[:, :, t]) for t in range(x.shape[2])]
        assert all(o is None for o in outputs[:299])
        for t in (299, 302, 305):
            _close(outputs[t], regular(x[:, :, t - 299 : t + 1]))


@pytest.mark.parametrize("arch", ["stgcn", "str"])
def test_original_first_step_output_at_296_is_the_clip_output(narrow_models, arch: str):
    model = narrow_models[arch, False]
    x = _stream(300, seed=5)
    with torch.no_grad():
        clip = model(x)
        assert clip.shape == (1, 60, 39)
        model.clean_state()
        outputs = [model.forward_step(x[:, :, t]) for t in range(300)]
    assert [t for t, o in enumerate(outputs) if o is not None] == [296]
    _close(outputs[296], clip[..., 0])


def test_coagcn_is_not_exact_but_its_steps_are_per_frame_forward_steps(narrow_models):
    """The original adaptive unit attends over all frames of a clip: CoA-GCN's ``forward`` is
    the regular AGCN (tested above), its steps see one frame at a time and equal
    ``forward_steps`` (which folds time into the batch), but not the clip output."""
    model = narrow_models["agcn", False]
    x = _stream(300, seed=6)
    with torch.no_grad():
        clip = model(x)
        model.clean_state()
        outputs = [model.forward_step(x[:, :, t]) for t in range(300)]
        model.clean_state()
        chunk = model.forward_steps(x)
    _close(outputs[296], chunk[..., 0])
    assert (outputs[296] - clip[..., 0]).abs().max() > 1e-3 * clip.abs().max()


def test_long_streams_do_not_drift_and_states_restore(narrow_models):
    """A stream of 3 windows: the last prediction equals a fresh model's on its window; a saved
    state gives the same continuation; ``update_state=False`` leaves the state as it was."""
    model = narrow_models["stgcn", True]
    regular = model.to_regular().eval()
    x = _stream(900, seed=7)
    with torch.no_grad():
        model.clean_state()
        model.forward_steps(x[:, :, :600])
        saved = model.get_state()
        tail = model.forward_steps(x[:, :, 600:])
        _close(tail[..., -1], regular(x[:, :, 600:]))
        model.set_state(saved)
        peek = model.forward_step(x[:, :, 600], update_state=False)
        torch.testing.assert_close(model.forward_steps(x[:, :, 600:]), tail)
        torch.testing.assert_close(peek, tail[..., 0])


def test_per_stream_reset(narrow_models):
    """Resetting stream 1 of a batch restarts its warm-up (in every layer, where each person is
    a batch row of its own); stream 0 goes on unaffected."""
    model = narrow_models["str", True]
    regular = model.to_regular().eval()
    x = _stream(305, seed=8, batch=2)
    with torch.no_grad():
        model.clean_state()
        outputs = {}
        for t in range(305):
            if t == 5:
                model.clean_state(streams=[-1])  # the last stream, counted from the end
            outputs[t] = (model.forward_step(x[:, :, t]), model.last_valid)
        first, valid = outputs[299]
        assert valid == (True, False)
        _close(first[:1], regular(x[:1, :, :300]))
        last, valid = outputs[304]
        assert valid is True or all(valid)
        _close(last, regular(x[:, :, 5:305]))


def test_published_pool_math():
    from cozoo.models.skeleton.layout import default_pool

    assert default_pool(153, 76, 4) == (75, 19)
    assert default_pool(81, 0, 1) == (220, 0)
    assert math.ceil((300 - 153 + 76 + 1) / 4) == 56  # real final-layer steps at the first output


def test_folding_the_batch_norms_keeps_the_steps(narrow_models):
    """``co.fuse_batch_norm`` (deployment) folds the temporal convs' BNs and the graph units
    (their two-matmul step); the steps stay those of the unfused network."""
    from cozoo import co

    model = narrow_models["stgcn", True]
    fused = co.fuse_batch_norm(model)
    x = _stream(300, seed=9)
    with torch.no_grad():
        model.clean_state()
        expected = model.forward_steps(x)
        got = fused.forward_steps(x)
    assert len([m for m in fused.modules() if isinstance(m, nn.BatchNorm2d)]) < len(
        [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    )
    units = [m for m in fused.modules() if isinstance(m, GraphUnit)]
    assert units and all(u.folded_weight is not None for u in units)
    assert all(u.folded_weight is None for u in model.modules() if isinstance(u, GraphUnit))
    _close(got, expected)


#: ptflops MACs (G) of the paper's counting: the regular clip (Table II) and, for the stride-one
#: models, one step under the published convention (the paper prints 0.16 / 0.17 / 0.15).
PUBLISHED_GMACS = {
    "costgcn": (16.73, None),
    "coagcn": (18.69, None),
    "costr": (16.14, None),
    "costgcn_mod": (36.90, 0.1557),
    "coagcn_mod": (40.87, 0.1721),
    "costr_mod": (35.65, 0.1505),
}


@pytest.mark.parametrize("name", CONTINUAL)
def test_macs_reproduce_the_published_figures(name: str):
    from cozoo.co.flops import complexity
    from cozoo.models import get_model_weights

    model = create_model(name).eval().to("meta")
    counted = complexity(model, (1, 3, 300, 25, 2), convention="continual-inference")
    clip, step = PUBLISHED_GMACS[name]
    assert (
        round(counted.clip_macs / 1e9, 2)
        == clip
        == get_model_weights(name).DEFAULT.meta.macs_per_clip.value
    )
    if step is not None:  # the paper's 4th digit: ours counts as its per-frame forward_step did
        assert counted.step_macs / 1e9 == pytest.approx(step, abs=1e-4)
    else:  # the original networks: a prediction (4 steps) costs about the clip / 75 (the clip
        # also computes its zero-padded borders)
        assert counted.step_macs_mean * 4 * 75 == pytest.approx(counted.clip_macs, rel=5e-3)


def test_a_network_built_and_folded_in_inference_mode_steps():
    from cozoo import co

    with torch.inference_mode():
        model = create_model("costgcn_mod", base_channels=NARROW, pool_size=2).eval()
        model = co.fuse_batch_norm(model)
        x = torch.randn(1, 3, 82, 25, 2)
        expected = model(x)
        model.clean_state()
        got = model.forward_steps(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_the_input_norm_channel_of_each_person_joint_and_coordinate():
    """``data_bn`` channel ``m·V·C + v·C + c`` is coordinate ``c`` of joint ``v`` of person ``m``
    (the published checkpoints' order), and persons become batch rows ``n·M + m``."""
    from cozoo.models.skeleton.persons import SkeletonDataNorm

    norm = SkeletonDataNorm(3, 25, 2).eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.arange(150.0))  # channel index as the mean
    x = torch.zeros(2, 3, 4, 25, 2)
    out = norm(x)  # (N·M, C, T, V) = -(channel index) / sqrt(1 + eps)
    assert out.shape == (4, 3, 4, 25)
    n, m, c, v = 1, 1, 2, 7
    expected = -(m * 25 * 3 + v * 3 + c) / (1 + norm.eps) ** 0.5
    assert out[n * 2 + m, c, 0, v].item() == pytest.approx(expected)
    step = norm.forward_step(x[:, :, 0])
    torch.testing.assert_close(step, out[:, :, 0])
