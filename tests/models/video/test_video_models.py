"""The continual video models (CoX3D-S/M/L, CoSlow, CoI3D) against their published facts
(Hedegaard & Iosifidis, "Continual 3D Convolutional Neural Networks for Real-time Processing of
Videos", ECCV 2022; the co3d and continual-inference 1.2.4 code) and against pytorchvideo's
regular networks.

Every checkpoint layout is generated here from a randomly initialised pytorchvideo hub model
(``pretrained=False``, BatchNorm statistics and affines randomised) through key mappings written
written here from the source code bases' module names (pytorchvideo hub, PySlowFast, Caffe2
blob names), independently of the models' own converters.

MACs are counted with ptflops on the meta device (shapes only, no arithmetic): the counts are
those of the real device (checked once below), at the published input sizes, in a fraction of
the time.
"""

from __future__ import annotations

import functools
import pickle
import re
import types
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from cozoo.co.export import flatten_state
from cozoo.co.flops import complexity
from cozoo.co.state_dicts import flatten_key
from cozoo.models import create_model, get_model_weights, list_models

pytorchvideo_hub = pytest.importorskip("pytorchvideo.models.hub")
from fvcore.nn.squeeze_excitation import SqueezeExcitation  # noqa: E402  (pytorchvideo's SE)


@dataclass(frozen=True)
class Spec:
    """Published facts of one model."""

    hub: str  # pytorchvideo hub builder
    frames: int  # published clip frames
    crop: int  # published crop (co3d image_size)
    clip_gmacs: float  # published per clip
    step_gmacs: float  # published per step (CoI3D: peak)
    small_p: int  # the published small pool size
    rf: Dict[int, int]  # receptive field per P (continual-inference 1.2.4)
    delay: Dict[int, int]  # delay per P (continual-inference 1.2.4)
    stride: int  # steps between outputs
    extra_params: int  # parameters beyond pytorchvideo's
    bn_gain: Tuple[float, float]  # random BN weight range (keeps logits O(1))


_X3D_GAIN, _RESNET_GAIN = (0.5, 1.5), (0.2, 0.6)
SPECS = {
    "cox3d_s": Spec(
        "x3d_s", 13, 160, 2.06, 0.17, 13, {13: 69, 64: 120}, {13: 40, 64: 91}, 1, 48, _X3D_GAIN
    ),
    "cox3d_m": Spec(
        "x3d_m", 16, 224, 4.97, 0.33, 16, {16: 72, 64: 120}, {16: 43, 64: 91}, 1, 48, _X3D_GAIN
    ),
    "cox3d_l": Spec(
        "x3d_l", 16, 312, 19.17, 1.25, 16, {16: 130, 64: 178}, {16: 72, 64: 120}, 1, 48, _X3D_GAIN
    ),
    "coslow": Spec(
        "slow_r50", 8, 256, 54.87, 6.90, 8, {8: 26, 64: 82}, {8: 16, 64: 72}, 1, 0, _RESNET_GAIN
    ),
    "coi3d": Spec(
        "i3d_r50", 8, 224, 28.61, 5.68, 8, {8: 42, 64: 98}, {8: 24, 64: 80}, 2, 0, _RESNET_GAIN
    ),
}
NAMES = list(SPECS)
X3D = [n for n in NAMES if n.startswith("cox3d")]
RESNETS = ["coslow", "coi3d"]


# --------------------------------------------------------------------------------------------
# References: pytorchvideo networks with random BN statistics
# --------------------------------------------------------------------------------------------
def _framewise_se(self: SqueezeExcitation, x: Tensor) -> Tensor:
    """pytorchvideo's SE with the squeeze per frame (spatial mean), as CoX3D (pitfall 2)."""
    return x * self.block(x.mean((3, 4), keepdim=True))


@functools.cache
def reference(name: str) -> nn.Module:
    """The pytorchvideo hub network of ``name`` in eval mode, BN randomised, no softmax, and
    (X3D) frame-wise SE. Cached: treat as read-only."""
    spec = SPECS[name]
    net = getattr(pytorchvideo_hub, spec.hub)(pretrained=False).eval()
    g = torch.Generator().manual_seed(0)
    lo, hi = spec.bn_gain
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(lo, hi, generator=g))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
            if isinstance(m, SqueezeExcitation):
                m.forward = types.MethodType(_framewise_se, m)
    net.blocks[-1].activation = None  # the X3D hub head ends in a softmax; we output logits
    return net


@functools.cache
def loaded(name: str, pool_size: int) -> nn.Module:
    """Our model with the reference's weights, mapped from ``{"model_state": sd}``."""
    model = create_model(name, pool_size=pool_size).eval()
    converted = model.convert_state_dict(
        {"model_state": reference(name).state_dict()}, "pytorchvideo"
    )
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    return model


def clip(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# Key layouts of the source code bases (inverse of the converters, written independently)
# --------------------------------------------------------------------------------------------
def _replace_all(key: str, pairs) -> str:
    for old, new in pairs:
        key = key.replace(old, new)
    return key


# pytorchvideo block names -> PySlowFast's (X3D, and the ResNet names behind co3d's CoI3D loading)
_BLOCK_TO_PYSLOWFAST = [
    ("branch1_conv.", "branch1."),
    ("branch1_norm.", "branch1_bn."),
    ("branch2.norm_b.1.block.0.", "branch2.se.fc1."),
    ("branch2.norm_b.1.block.2.", "branch2.se.fc2."),
    ("branch2.norm_b.0.", "branch2.b_bn."),
    ("branch2.conv_a.", "branch2.a."),
    ("branch2.conv_b.", "branch2.b."),
    ("branch2.conv_c.", "branch2.c."),
    ("branch2.norm_a.", "branch2.a_bn."),
    ("branch2.norm_b.", "branch2.b_bn."),
    ("branch2.norm_c.", "branch2.c_bn."),
]
_X3D_TOP_TO_PYSLOWFAST = [
    ("blocks.0.conv.conv_t.", "s1.pathway0_stem.conv_xy."),
    ("blocks.0.conv.conv_xy.", "s1.pathway0_stem.conv."),
    ("blocks.0.norm.", "s1.pathway0_stem.bn."),
    ("blocks.5.pool.pre_conv.", "head.conv_5."),
    ("blocks.5.pool.pre_norm.", "head.conv_5_bn."),
    ("blocks.5.pool.post_conv.", "head.lin_5."),
    ("blocks.5.proj.", "head.projection."),
]
# pytorchvideo block index of res2..res5 and the head
_STAGE_BLOCKS = {"x3d": (1, 2, 3, 4, 5), "coslow": (1, 2, 3, 4, 5), "coi3d": (1, 3, 4, 5, 6)}


def _stage_blocks(name: str) -> Tuple[int, ...]:
    return _STAGE_BLOCKS["x3d" if name in X3D else name]


def to_pyslowfast(name: str, sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """A pytorchvideo state dict renamed to the PySlowFast layout (+ X3D's res2 shortcut BN,
    the identity, so that the network computes the same function)."""
    *stages, head = _stage_blocks(name)
    out = {}
    for key, value in sd.items():
        m = re.match(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(.*)", key)
        if m:
            stage = stages.index(int(m[1])) + 2
            new = f"s{stage}.pathway0_res{m[2]}." + _replace_all(m[3], _BLOCK_TO_PYSLOWFAST)
        elif name in X3D:
            new = _replace_all(key, _X3D_TOP_TO_PYSLOWFAST)
        else:
            new = _replace_all(
                key,
                [
                    ("blocks.0.conv.", "s1.pathway0_stem.conv."),
                    ("blocks.0.norm.", "s1.pathway0_stem.bn."),
                    (f"blocks.{head}.proj.", "head.projection."),
                ],
            )
        assert new != key, key
        out[new] = value.clone()
    if name in X3D:
        c = sd["blocks.1.res_blocks.0.branch1_conv.weight"].shape[0]
        out["s2.pathway0_res0.branch1_bn.weight"] = torch.ones(c)
        out["s2.pathway0_res0.branch1_bn.bias"] = torch.zeros(c)
        out["s2.pathway0_res0.branch1_bn.running_mean"] = torch.zeros(c)
        out["s2.pathway0_res0.branch1_bn.running_var"] = torch.full((c,), 1 - 1e-5)
        out["s2.pathway0_res0.branch1_bn.num_batches_tracked"] = torch.tensor(0)
    return out


_CAFFE2_BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}


def to_caffe2(name: str, sd: Dict[str, Tensor]) -> Dict[str, np.ndarray]:
    """A pytorchvideo ResNet state dict as Caffe2 blobs (PySlowFast's Caffe2 names): numpy
    arrays, no BN counters, 1x1x1 shortcut weights stored 2-D, plus momentum / lr / iter
    bookkeeping blobs."""
    *stages, head = _stage_blocks(name)
    blobs: Dict[str, np.ndarray] = {}
    for key, value in sd.items():
        *path, leaf = key.split(".")
        if leaf == "num_batches_tracked":
            continue
        prefix = ".".join(path)
        m = re.fullmatch(r"blocks\.(\d+)\.res_blocks\.(\d+)\.(.*)", prefix)
        if prefix == "blocks.0.conv":
            new = "conv1_w"
        elif prefix == "blocks.0.norm":
            new = f"res_conv1_bn_{_CAFFE2_BN[leaf]}"
        elif prefix == f"blocks.{head}.proj":
            new = f"pred_{leaf[0]}"
        elif m:
            block = f"res{stages.index(int(m[1])) + 2}_{m[2]}_"
            inner = m[3]
            if inner == "branch1_conv":
                new = block + "branch1_w"
                value = value.flatten(1)  # stored 2-D: the converter must reshape it
            elif inner == "branch1_norm":
                new = block + f"branch1_bn_{_CAFFE2_BN[leaf]}"
            elif inner.startswith("branch2.conv_"):
                new = block + f"branch2{inner[-1]}_w"
            elif inner.startswith("branch2.norm_"):
                new = block + f"branch2{inner[-1]}_bn_{_CAFFE2_BN[leaf]}"
            else:
                raise AssertionError(key)
        else:
            raise AssertionError(key)
        blobs[new] = value.numpy().copy()
    for extra in ("conv1_w_momentum", "pred_b_momentum"):
        blobs[extra] = np.zeros(3, dtype=np.float32)
    blobs["lr"] = np.array(0.1, dtype=np.float32)
    blobs["iter"] = np.array(1000, dtype=np.int64)
    return blobs


def assert_same_weights(a: nn.Module, b: nn.Module, counters: bool = True) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if counters or not key.endswith("num_batches_tracked"):
            assert torch.equal(sa[key], sb[key]), key


# --------------------------------------------------------------------------------------------
# Registry and architecture facts
# --------------------------------------------------------------------------------------------
def test_registry_lists_the_video_models():
    assert set(NAMES) <= set(list_models())
    assert list_models("cox3d_*") == ["cox3d_l", "cox3d_m", "cox3d_s"]
    for name in NAMES:
        assert get_model_weights(name) is not None


@pytest.mark.parametrize("name", NAMES)
def test_receptive_field_and_delay_match_the_published_table(name):
    spec = SPECS[name]
    for p in (spec.small_p, 64):
        model = create_model(name, pool_size=p)
        assert (model.receptive_field, model.delay) == (spec.rf[p], spec.delay[p]), p
        assert model.stride == (spec.stride,)
        assert model.pool_size == p


@pytest.mark.parametrize("name", NAMES)
def test_params_equal_pytorchvideo(name):
    """pytorchvideo's count; X3D +48: the PySlowFast res2 shortcut BN."""
    ours = sum(p.numel() for p in create_model(name).parameters())
    theirs = sum(p.numel() for p in reference(name).parameters())
    assert ours == theirs + SPECS[name].extra_params


@pytest.mark.parametrize("name", NAMES)
def test_keys_are_unique_when_flattened(name):
    """Converters target the keys without numeric container indices: they must be unique."""
    keys = list(create_model(name, pool_size=2).state_dict())
    assert len({flatten_key(k) for k in keys}) == len(keys)


def test_builder_arguments_are_checked():
    with pytest.raises(ValueError, match="even"):
        create_model("coi3d", pool_size=7)
    with pytest.raises(ValueError, match="temporal_fill"):
        create_model("coslow", temporal_fill="reflect")
    with pytest.raises(ValueError, match="pool_size"):
        create_model("cox3d_s", pool_size=0)
    model = create_model("cox3d_s", pool_size=4, num_classes=10, weights=None)
    assert model.head.projection.out_features == 10


# --------------------------------------------------------------------------------------------
# Clip equivalence with pytorchvideo
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_forward_equals_pytorchvideo_at_the_published_size(name):
    """Clip forward = pytorchvideo on frames x crop (Slow: 224², where the hub's fixed
    (8, 7, 7) head pool is global; 256² below). Logits, to 1e-4."""
    spec = SPECS[name]
    crop = 224 if name == "coslow" else spec.crop
    x = clip(1, 3, spec.frames, crop, crop)
    with torch.no_grad():
        expected = reference(name)(x)
        got = loaded(name, spec.small_p)(x)
    assert got.shape == (1, 400, 1)
    assert expected.abs().max() > 0.01  # a meaningful comparison
    torch.testing.assert_close(got[:, :, 0], expected, rtol=0, atol=1e-4)


def test_coslow_at_256_equals_pytorchvideo_with_a_global_head_pool():
    """At 256² the hub's (8, 7, 7) stride-1 pool averages 2x2 windows (pitfall 8); co3d and
    cozoo pool globally, which equals the hub network with a global head pool."""
    net = reference("coslow")
    x = clip(1, 3, 8, 256, 256)
    original = net.blocks[5].pool
    try:
        net.blocks[5].pool = nn.AdaptiveAvgPool3d(1)
        with torch.no_grad():
            expected = net(x)
    finally:
        net.blocks[5].pool = original
    with torch.no_grad():
        got = loaded("coslow", 8)(x)
    torch.testing.assert_close(got[:, :, 0], expected, rtol=0, atol=1e-4)


def test_x3d_pytorchvideo_conversion_inserts_an_identity_shortcut_bn():
    model = loaded("cox3d_s", 13)
    bn = model.res2.block0.residual.shortcut[0].norm
    assert torch.equal(bn.weight, torch.ones(24)) and torch.equal(bn.bias, torch.zeros(24))
    assert torch.equal(bn.running_mean, torch.zeros(24))
    torch.testing.assert_close(bn.running_var + bn.eps, torch.ones(24), rtol=0, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Continual equivalence
# --------------------------------------------------------------------------------------------
_SMALL_T = {"cox3d_s": 4, "cox3d_m": 4, "cox3d_l": 4, "coslow": 4, "coi3d": 8}


@pytest.mark.parametrize("name", NAMES)
def test_forward_steps_with_end_padding_equal_forward(name):
    """With P = the clip's frames, streaming the clip (zero fill, end padding) is the clip
    forward."""
    t = _SMALL_T[name]
    model = create_model(name, pool_size=t).eval()
    model.load_state_dict(loaded(name, SPECS[name].small_p).state_dict())
    x = clip(2, 3, t, 64, 64, seed=1)
    with torch.no_grad():
        expected = model(x)
        model.clean_state()
        got = model.forward_steps(x, pad_end=True)
    assert expected.shape == got.shape == (2, 400, 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_steady_state_does_not_depend_on_the_fill():
    """Once the receptive field is inside the stream, zeros and replicate fills agree; the
    first (transient) output differs."""
    x = clip(1, 3, 26, 32, 32, seed=3)
    outs = {}
    for fill in ("zeros", "replicate"):
        model = create_model("coslow", pool_size=2, temporal_fill=fill).eval()
        model.load_state_dict(loaded("coslow", 8).state_dict())
        with torch.no_grad():
            outs[fill] = model.forward_steps(x)
    rf, delay = 20, 10  # P = 2
    first_steady = rf - 1 - delay  # output index of step rf - 1
    zeros, replicate = outs["zeros"], outs["replicate"]
    torch.testing.assert_close(zeros[:, :, first_steady:], replicate[:, :, first_steady:])
    assert not torch.allclose(zeros[:, :, 0], replicate[:, :, 0])


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------
def _small_input() -> Tensor:
    return clip(1, 3, 4, 64, 64, seed=4)


def _load(name: str, state, source_format: str) -> nn.Module:
    model = create_model(name, pool_size=2).eval()
    converted = model.convert_state_dict(state, source_format)
    assert set(converted) == set(model.state_dict())  # nothing dropped, nothing invented
    model.load_state_dict(converted, strict=True)
    return model


@pytest.mark.parametrize("name", NAMES)
def test_pyslowfast_layout_loads_the_same_network(name):
    state = {"model_state": to_pyslowfast(name, reference(name).state_dict())}
    model = _load(name, state, "pyslowfast")
    twin = create_model(name, pool_size=2).eval()
    twin.load_state_dict(loaded(name, SPECS[name].small_p).state_dict())
    assert_same_weights(model, twin)
    with torch.no_grad():
        assert torch.equal(model(_small_input()), twin(_small_input()))


def test_pyslowfast_x3d_shortcut_bn_lands_in_res2():
    sd = to_pyslowfast("cox3d_s", reference("cox3d_s").state_dict())
    sd["s2.pathway0_res0.branch1_bn.weight"] = torch.full((24,), 2.0)
    model = _load("cox3d_s", sd, "pyslowfast")
    assert torch.equal(model.res2.block0.residual.shortcut[0].norm.weight, torch.full((24,), 2.0))


@pytest.mark.parametrize("name", RESNETS)
def test_caffe2_layout_loads_the_same_network(name):
    state = {"blobs": to_caffe2(name, reference(name).state_dict())}
    model = _load(name, state, "caffe2")
    twin = create_model(name, pool_size=2).eval()
    twin.load_state_dict(loaded(name, SPECS[name].small_p).state_dict())
    assert_same_weights(model, twin, counters=False)
    with torch.no_grad():
        assert torch.equal(model(_small_input()), twin(_small_input()))


@pytest.mark.parametrize("name", X3D)
def test_x3d_has_no_caffe2_layout(name):
    with pytest.raises(ValueError, match="source_format"):
        create_model(name, pool_size=2).convert_state_dict({}, "caffe2")


@pytest.mark.parametrize("name", NAMES)
def test_cozoo_layout_is_the_identity(name):
    model = create_model(name, pool_size=2)
    own = model.state_dict()
    converted = model.convert_state_dict(own, "cozoo")
    assert list(converted) == list(own)
    flat = model.state_dict(flatten=True)  # short keys (co.flat_state_dict) map back
    assert list(model.convert_state_dict(flat, "cozoo")) == list(own)


def test_unknown_keys_are_passed_through_for_the_strict_loader():
    sd = dict(reference("coslow").state_dict())
    sd["blocks.9.extra.weight"] = torch.zeros(1)
    del sd["blocks.5.proj.bias"]
    model = create_model("coslow", pool_size=2)
    converted = model.convert_state_dict(sd, "pytorchvideo")
    assert "blocks.9.extra.weight" in converted
    result = model.load_state_dict(converted, strict=False)
    assert result.unexpected_keys == ["blocks.9.extra.weight"]
    assert result.missing_keys == ["head.projection.bias"]
    with pytest.raises(ValueError, match="source_format"):
        model.convert_state_dict(sd, "torchvision")


def test_builders_load_checkpoint_files(tmp_path):
    """``weights=<path>``: the loader detects the layout and the model converts it."""
    pyth = tmp_path / "x3d_s.pyth"
    torch.save({"model_state": reference("cox3d_s").state_dict()}, pyth)
    model = create_model("cox3d_s", pool_size=2, weights=str(pyth))
    assert_same_weights(model.eval(), loaded("cox3d_s", 13))

    pkl = tmp_path / "I3D_8x8_R50.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"blobs": to_caffe2("coi3d", reference("coi3d").state_dict())}, f, protocol=2)
    model = create_model("coi3d", pool_size=2, weights=str(pkl))
    assert_same_weights(model.eval(), loaded("coi3d", 8), counters=False)


# --------------------------------------------------------------------------------------------
# Compute
# --------------------------------------------------------------------------------------------
def _meta_model(name: str, pool_size: int) -> nn.Module:
    return create_model(name, pool_size=pool_size).eval().to("meta")


def test_meta_device_counts_equal_real_counts():
    shape = (1, 3, 4, 64, 64)
    real = complexity(create_model("cox3d_s", pool_size=2).eval(), shape)
    meta = complexity(_meta_model("cox3d_s", 2), shape)
    assert real == meta


@pytest.mark.parametrize("name", NAMES)
def test_macs_per_clip_and_step(name, record_property):
    """Per clip at the published input: the published figure within 1 % (ptflops module hooks,
    functional ops off). Per step: reported; the published figures double-count the wrapped
    BN/ReLU in step mode (continual-inference's wrappers), so ours lie a few % below them."""
    spec = SPECS[name]
    c = complexity(_meta_model(name, spec.small_p), (1, 3, spec.frames, spec.crop, spec.crop))
    clip_g, step_g, mean_g = c.clip_macs / 1e9, c.step_macs / 1e9, c.step_macs_mean / 1e9
    record_property("gmacs", {"clip": clip_g, "step_peak": step_g, "step_mean": mean_g})
    print(f"{name}: clip {clip_g:.4f} (published {spec.clip_gmacs}), step {step_g:.4f} "
          f"(mean {mean_g:.4f}; published {spec.step_gmacs})")  # fmt: skip
    assert clip_g == pytest.approx(spec.clip_gmacs, rel=0.01)
    assert 0.9 * spec.step_gmacs <= step_g <= spec.step_gmacs


@pytest.mark.parametrize("name", NAMES)
def test_published_step_macs_reproduced_under_their_convention(name):
    """The published per-step figures (2 decimals) come back exactly when each wrapped BN/ReLU
    is counted twice per step, as the reference's wrappers made ptflops do; the
    weights' meta carries the same published numbers."""
    spec = SPECS[name]
    shape = (1, 3, spec.frames, spec.crop, spec.crop)
    c = complexity(_meta_model(name, spec.small_p), shape, convention="continual-inference")
    assert round(c.step_macs / 1e9, 2) == spec.step_gmacs
    assert c.clip_macs / 1e9 == pytest.approx(spec.clip_gmacs, rel=0.01)
    meta = get_model_weights(name).DEFAULT.meta
    assert meta.macs_per_step.value == spec.step_gmacs
    assert meta.macs_per_step.unit == "GMACs"
    assert c.clip_macs / 1e9 == pytest.approx(meta.macs_per_clip.value, rel=0.01)
    assert meta.num_params == sum(p.numel() for p in _meta_model(name, 2).parameters())


@pytest.mark.parametrize("name", NAMES)
def test_one_step_runs_no_more_conv_linear_macs_than_published(name):
    """torch's FlopCounterMode (conv and matmul only) on a warmed-up model: the costliest
    step of a stride period is within the published per-step figure (+5 %)."""
    spec = SPECS[name]
    model = _meta_model(name, 2)
    frame = torch.zeros(1, 3, spec.crop, spec.crop, device="meta")
    model.warm_up(frame.shape)
    macs = []
    for _ in range(spec.stride):
        with FlopCounterMode(display=False) as counter:
            model.forward_step(frame)
        macs.append(counter.get_total_flops() / 2 / 1e9)
    assert max(macs) <= spec.step_gmacs * 1.05
    assert max(macs) > 0.8 * spec.step_gmacs  # the step really ran the network


@pytest.mark.parametrize("name", NAMES)
def test_steps_equal_forward_steps_in_both_step_layouts(name):
    """Frame by frame (channels-last inside the step, the default, and contiguous frames)
    the outputs equal the chunked ``forward_steps`` (which runs the clip ops), and the default
    step really keeps its cached frames channels-last (the fast path is on)."""
    model = create_model(name, pool_size=2).eval()
    x = clip(2, 3, model.delay + 4, 32, 32, seed=3)
    with torch.no_grad():
        expected = model.forward_steps(x)
        results = {}
        for layout in (torch.channels_last, torch.contiguous_format):
            model.step_memory_format = layout
            model.clean_state()
            outs = [model.forward_step(x[:, :, t]) for t in range(x.shape[2])]
            results[layout] = torch.stack([o for o in outs if o is not None], 2)
            if layout is torch.channels_last:
                tensors, _ = flatten_state(model.get_state())
                frames = [s for s in tensors if s.dim() == 4 and s.shape[1] > 3 and s.shape[-1] > 1]
    for got in results.values():
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert frames and all(f.is_contiguous(memory_format=torch.channels_last) for f in frames)
