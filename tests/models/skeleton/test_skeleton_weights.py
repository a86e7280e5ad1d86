"""The skeleton weights entries and checkpoint layouts: every published layout (plain and wrapped
state dicts, Lightning ``.ckpt`` with foreign hyper-parameter objects, the original continual
modules' nested keys) loads strictly into the continual models and gives the regular network's
outputs; wrong files are refused with the key diff; each entry's meta is the built model's.

Tiny models: ``base_channels=32`` builds the published architectures at half width."""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Tuple

import pytest
import torch
from torch import nn

from cozoo.models import create_model, get_model_info
from cozoo.models._errors import StateDictMismatchError, WeightsError
from cozoo.models._hub import UnloadedObject, read_checkpoint
from cozoo.models.skeleton.regular import RegularSkeletonNet

BASE = 32
FRAMES = 300
#: model -> (architecture, mod, adaptive unit of its published checkpoints)
MODELS = {
    "costgcn": ("stgcn", False, "clip"),
    "costgcn_mod": ("stgcn", True, "clip"),
    "coagcn": ("agcn", False, "clip"),
    "coagcn_mod": ("agcn", True, "published"),
    "costr": ("str", False, "clip"),
    "costr_mod": ("str", True, "clip"),
}


def _randomise(net: nn.Module, seed: int) -> None:
    """Random trainable weights and BN statistics (the fixed graphs ``A`` are kept)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)
                m.weight.add_(1.0)


def _kwargs(name: str) -> Dict[str, Any]:
    """Builder kwargs of a tiny ``name`` whose clip output is the regular network's."""
    _, mod, unit = MODELS[name]
    kwargs: Dict[str, Any] = {"base_channels": BASE}
    if name.startswith("coagcn"):
        kwargs["adaptive_unit"] = unit
    if not mod:
        kwargs["pool_padding"] = 0
    return kwargs


class Reference:
    """A tiny regular network with random weights, its state dict and its output on a clip."""

    def __init__(self, name: str, seed: int):
        architecture, mod, unit = MODELS[name]
        self.net = RegularSkeletonNet(architecture, mod=mod, base_channels=BASE, adaptive_unit=unit)
        _randomise(self.net, seed)
        self.net.eval()
        self.state = self.net.state_dict()
        clip_generator = torch.Generator().manual_seed(seed + 1)
        self.clip = torch.randn((1, 3, FRAMES, 25, 2), generator=clip_generator)
        with torch.no_grad():
            self.output = self.net(self.clip)


@pytest.fixture(scope="module")
def references() -> Dict[str, Reference]:
    return {name: Reference(name, seed) for seed, name in enumerate(MODELS)}


def _published_state(model: nn.Module) -> OrderedDict[str, torch.Tensor]:
    from cozoo.models.skeleton.checkpoints import to_published_keys

    return to_published_keys(model.state_dict())


def _assert_same_state(model: nn.Module, reference: Reference) -> None:
    state = _published_state(model)
    assert state.keys() == reference.state.keys()
    for key, tensor in reference.state.items():
        torch.testing.assert_close(state[key], tensor, rtol=0, atol=0, msg=key)


def _original_continual_key(key: str) -> str:
    """A published key as the original continual modules nest it (layers 2-10)."""
    match = re.match(r"^(layers\.layer(\d+))\.(gcn|tcn|residual)\.(.+)$", key)
    if match is None or match[2] == "1":
        return key
    nest = "0.0" if match[3] == "residual" else "0.1"
    return f"{match[1]}.{nest}.{match[3]}.{match[4]}"


class _ForeignHyperParameters:
    """Stands for a hyper-parameter object of a library cozoo does not have: unpickling it with
    a plain unpickler writes ``marker`` (``__setstate__``), and so does constructing it."""

    def __init__(self, marker: str):
        Path(marker).write_text("constructed")
        self.__dict__["marker"] = marker

    def __setstate__(self, state: Dict[str, Any]) -> None:
        Path(state["marker"]).write_text("unpickled")


class _ForeignReduce:
    """Unpickling it with a plain unpickler calls ``_ForeignHyperParameters(marker)``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_ForeignHyperParameters, (self.marker,))


def _lightning(state: Dict[str, torch.Tensor], marker: Path) -> Dict[str, Any]:
    hparams = _ForeignHyperParameters.__new__(_ForeignHyperParameters)
    hparams.__dict__.update(marker=str(marker), lr=0.1, batch_size=8)
    return {
        "epoch": 29,
        "global_step": 1234,
        "pytorch-lightning_version": "1.4.9",
        "state_dict": state,
        "hyper_parameters": hparams,
        "callbacks": {"ModelCheckpoint": _ForeignReduce(str(marker))},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
    }


LAYOUTS = ("pt", "state_dict", "model_state", "lightning_ckpt", "original_continual")


def _write(layout: str, reference: Reference, path: Path, marker: Path) -> Path:
    state = OrderedDict(reference.state)
    if layout == "original_continual":
        state = OrderedDict((_original_continual_key(k), v) for k, v in state.items())
        assert any(".0.1.gcn." in k for k in state) and any(".0.0.residual." in k for k in state)
    obj: Any = {
        "pt": state,
        "original_continual": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model_state": {"model_state": state},
        "lightning_ckpt": _lightning(state, marker),
    }[layout]
    file = path / f"{layout}.{'ckpt' if layout == 'lightning_ckpt' else 'pt'}"
    torch.save(obj, file)
    return file


@pytest.mark.parametrize("name", MODELS)
def test_published_weights_give_the_regular_networks_output(references, name, tmp_path):
    reference = references[name]
    path = _write("pt", reference, tmp_path, tmp_path / "marker")
    model = create_model(name, weights=str(path), **_kwargs(name)).eval()
    with torch.no_grad():
        output = model(reference.clip)
    assert output.shape == (1, 60, 1)
    scale = reference.output.abs().max().item()
    torch.testing.assert_close(output[..., 0], reference.output, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", MODELS)
def test_every_published_layout_loads_strictly(references, name, layout, tmp_path):
    reference = references[name]
    marker = tmp_path / "marker"
    path = _write(layout, reference, tmp_path, marker)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = create_model(name, weights=str(path), **_kwargs(name))
    _assert_same_state(model, reference)
    assert not marker.exists(), "code in the checkpoint ran"
    replaced = [str(w.message) for w in caught if "UnloadedObject" in str(w.message)]
    if layout == "lightning_ckpt":
        assert len(replaced) == 1 and "_ForeignHyperParameters" in replaced[0]
    else:
        assert not replaced


def test_a_lightning_checkpoint_is_read_without_running_its_objects(references, tmp_path):
    marker = tmp_path / "marker"
    path = _write("lightning_ckpt", references["costgcn"], tmp_path, marker)
    with pytest.warns(UserWarning, match="_ForeignHyperParameters"):
        checkpoint = read_checkpoint(path)
    assert not marker.exists()
    hparams = checkpoint["hyper_parameters"]
    assert isinstance(hparams, UnloadedObject)
    assert hparams.global_name.endswith("_ForeignHyperParameters")
    assert hparams.state == {"marker": str(marker), "lr": 0.1, "batch_size": 8}
    reduced = checkpoint["callbacks"]["ModelCheckpoint"]
    assert isinstance(reduced, UnloadedObject) and reduced.args == (str(marker),)
    assert checkpoint["epoch"] == 29 and checkpoint["optimizer_states"][0]["state"] == {}
    for key, tensor in references["costgcn"].state.items():
        assert torch.equal(checkpoint["state_dict"][key], tensor), key
    torch.load(path, weights_only=False)  # the payload is live: a plain load runs it
    assert marker.exists()


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s.pop("layers.layer3.tcn.t_conv.weight"), "layer3"),
        (lambda s: s.__setitem__("layers.layer3.gcn.extra", torch.ones(1)), "extra"),
        (lambda s: s.__setitem__("fc.weight", torch.ones(61, 4 * BASE)), "fc.weight"),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_a_wrong_file_is_refused_with_the_key_diff(references, tmp_path, edit, expected):
    state = OrderedDict(references["costgcn_mod"].state)
    edit(state)
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    with pytest.raises(StateDictMismatchError, match=expected):
        create_model("costgcn_mod", weights=str(path), base_channels=BASE)


def test_a_file_for_another_graph_is_refused(references, tmp_path):
    state = OrderedDict(references["costgcn"].state)
    state["layers.layer2.gcn.A"] = state["layers.layer2.gcn.A"].flip(-1)
    path = tmp_path / "other_graph.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"layers\.layer2\..*gcn\.A"):
        create_model("costgcn", weights=str(path), base_channels=BASE)


# --------------------------------------------------------------------------------------------
# The weights entries
# --------------------------------------------------------------------------------------------
PREFIXES = ("NTU60_XSUB", "NTU60_XVIEW", "NTU120_XSUB", "NTU120_XSET", "KINETICS")
JOINTS = {"ntu": 25, "kinetics": 18}


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def built() -> Dict[Tuple[str, int, str], Tuple[int, int, int, str, str]]:
    """(model, classes, graph) -> (trainable params, receptive field, delay, graph, unit)."""
    cache: Dict[Tuple[str, int, str], Tuple[int, int, int, str, str]] = {}

    def build(name: str, classes: int, kwargs: Dict[str, Any]) -> Tuple[int, int, int, str, str]:
        key = (name, classes, kwargs.get("graph", "ntu"))
        if key not in cache:
            with torch.device("meta"):
                model = create_model(name, num_classes=classes, **kwargs)
            cache[key] = (
                _trainable(model), model.receptive_field, model.delay, model.graph,
                getattr(model, "adaptive_unit", ""),
            )  # fmt: skip
        return cache[key]

    return build


@pytest.mark.parametrize("name", MODELS)
def test_every_entry_states_the_built_models_facts(built, name):
    weights = get_model_info(name).weights
    members = [m for m in weights.__members__ if m != "DEFAULT"]
    assert members == [f"{p}_{m}" for p in PREFIXES for m in ("JOINT", "BONE")]
    assert weights.DEFAULT is weights.NTU60_XSUB_JOINT
    for member in members:
        entry = weights[member]
        meta = entry.meta
        assert entry.url is None and entry.sha256 is None
        assert entry.source_format == "continual_skeletons"
        kinetics = member.startswith("KINETICS")
        assert meta.num_classes == (400 if kinetics else 120 if "NTU120" in member else 60)
        assert meta.input.modality == member.rsplit("_", 1)[1].lower()
        assert meta.input.graph == ("kinetics" if kinetics else "ntu")
        assert meta.input.clip_shape == (3, FRAMES, JOINTS[meta.input.graph], 2)
        params, rf, delay, graph, unit = built(name, meta.num_classes, dict(meta.model_kwargs))
        assert meta.num_params == params, member
        assert graph == meta.input.graph and meta.input.joints == JOINTS[graph]
        assert [(v.receptive_field, v.delay) for v in meta.variants] == [(rf, delay)]
        assert meta.variants[0].kwargs == {}
        if name.startswith("coagcn"):
            assert unit == ("published" if name.endswith("_mod") else "clip")
        assert meta.macs_per_clip.unit == meta.macs_per_step.unit == "GMACs"
        assert meta.macs_per_clip.input == meta.input.clip_shape
        expected = None if graph == "kinetics" else f"{name}_{member.lower()}"
        assert meta.recipe == expected  # a recipe per NTU entry (tests/tasks checks it exists)
        assert meta.baseline is not None and meta.baseline.builder is not None
        assert get_model_info(meta.baseline.builder).weights is None
        streams = {r.setting["streams"] for r in meta.published}
        assert streams == ({1, 2} if meta.input.modality == "joint" else {2})
        assert all(r.unit == "%" and 0 < r.value < 100 for r in meta.published)
        assert {r.metric for r in meta.published} == (
            {"top-1 accuracy", "top-5 accuracy"} if kinetics else {"top-1 accuracy"}
        )


def test_published_figures_of_the_ntu60_entries():
    """Spot checks of the paper's tables (Table II: params, GMACs, X-Sub top-1)."""
    expected = {
        "costgcn": (3_141_478, 16.73, 0.27, 85.3, (449, 296)),
        "costgcn_mod": (3_141_478, 36.90, 0.16, 86.3, (300, 299)),
        "coagcn": (3_469_510, 18.69, 0.30, 86.0, (449, 296)),
        "coagcn_mod": (3_469_510, 40.87, 0.17, 84.1, (300, 299)),
        "costr": (3_086_470, 16.14, 0.22, 86.5, (449, 296)),
        "costr_mod": (3_086_470, 35.65, 0.15, 86.3, (300, 299)),
    }
    for name, (params, clip, step, top1, temporal) in expected.items():
        meta = get_model_info(name).weights.DEFAULT.meta
        assert meta.num_params == params and round(meta.num_params / 1e6, 2) in (3.14, 3.47, 3.09)
        assert (meta.macs_per_clip.value, meta.macs_per_step.value) == (clip, step)
        table2 = [r for r in meta.published if "II" in r.setting["table"].split(", ")]
        assert [r.value for r in table2] == [top1]
        assert (meta.variants[0].receptive_field, meta.variants[0].delay) == temporal
    kinetics = get_model_info("costr").weights.KINETICS_JOINT.meta
    assert [(r.metric, r.value) for r in kinetics.published] == [
        ("top-1 accuracy", 29.7), ("top-5 accuracy", 52.6), ("top-1 accuracy", 32.7),
        ("top-5 accuracy", 55.6),
    ]  # fmt: skip
    assert (kinetics.macs_per_clip.value, kinetics.macs_per_step.value) == (11.62, 0.16)
    assert (
        "not published"
        in get_model_info("costgcn_mod").weights.KINETICS_JOINT.meta.macs_per_clip.note
    )
