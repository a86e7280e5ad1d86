"""The generic weights core: entries, downloading / verifying / reading / loading, builders.

The loader is exercised end to end on checkpoints generated here and served by a loopback
HTTP server (``server`` fixture, 127.0.0.1), with ``TORCH_HOME`` in ``tmp_path`` (``hub_dir``).
A tiny model with its own ``convert_state_dict`` stands in for the zoo architectures; every
registered model is also loaded from a served checkpoint of its own state dict.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
import shlex
import struct
import warnings
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
from torch import nn

from cozoo import models as W
from cozoo.models import (
    ChecksumError,
    Compute,
    CoX3D_M_Weights,
    CoX3D_S_Weights,
    StateDictMismatchError,
    UnpinnedChecksumWarning,
    UnsafeCheckpointError,
    Variant,
    VideoInput,
    Weights,
    WeightsEnum,
    WeightsError,
    WeightsMeta,
    build_model,
    load_weights,
)
from cozoo.models.video.checkpoints import detect_source_format

REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# A tiny model in four key layouts
# --------------------------------------------------------------------------------------------
class TinyNet(nn.Module):
    """Stem conv + BN + linear head; maps the four source layouts onto its own keys."""

    source_formats = ("cozoo", "pytorchvideo", "pyslowfast", "caffe2")
    detect_source_format = staticmethod(detect_source_format)

    SOURCE_KEYS = {
        "pytorchvideo": {
            "stem.weight": "blocks.0.conv.weight",
            "norm.weight": "blocks.0.norm.weight",
            "norm.bias": "blocks.0.norm.bias",
            "norm.running_mean": "blocks.0.norm.running_mean",
            "norm.running_var": "blocks.0.norm.running_var",
            "norm.num_batches_tracked": "blocks.0.norm.num_batches_tracked",
            "head.weight": "blocks.1.proj.weight",
            "head.bias": "blocks.1.proj.bias",
        },
        "pyslowfast": {
            "stem.weight": "s1.pathway0_stem.conv.weight",
            "norm.weight": "s1.pathway0_stem.bn.weight",
            "norm.bias": "s1.pathway0_stem.bn.bias",
            "norm.running_mean": "s1.pathway0_stem.bn.running_mean",
            "norm.running_var": "s1.pathway0_stem.bn.running_var",
            "norm.num_batches_tracked": "s1.pathway0_stem.bn.num_batches_tracked",
            "head.weight": "head.projection.weight",
            "head.bias": "head.projection.bias",
        },
        "caffe2": {
            "stem.weight": "conv1_w",
            "norm.weight": "res_conv1_bn_s",
            "norm.bias": "res_conv1_bn_b",
            "norm.running_mean": "res_conv1_bn_rm",
            "norm.running_var": "res_conv1_bn_riv",
            "head.weight": "pred_w",
            "head.bias": "pred_b",
        },
    }

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.stem = nn.Conv3d(3, 4, (3, 1, 1), bias=False)
        self.norm = nn.BatchNorm3d(4)
        self.head = nn.Linear(4, num_classes)
        self.formats_seen: List[str] = []

    def convert_state_dict(self, state: Dict[str, Any], source_format: str) -> Dict[str, Any]:
        self.formats_seen.append(source_format)
        if source_format == "cozoo":
            return dict(state)
        ours = {src: dst for dst, src in self.SOURCE_KEYS[source_format].items()}
        out = {ours.get(k, k): v for k, v in state.items() if not _caffe2_extra(k)}
        if source_format == "caffe2":
            out["norm.num_batches_tracked"] = torch.tensor(0)
        return out


def _caffe2_extra(key: str) -> bool:
    return key.endswith("_momentum") or key in ("lr", "model_iter")


def _reference(num_classes: int = 5) -> TinyNet:
    """A TinyNet whose every tensor (BN statistics included) is random."""
    model = TinyNet(num_classes)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model


def _in_format(model: TinyNet, fmt: str) -> Dict[str, Any]:
    """``model``'s state dict in layout ``fmt`` (what a released file of that layout holds)."""
    state = model.state_dict()
    if fmt == "cozoo":
        return dict(state)
    keys = TinyNet.SOURCE_KEYS[fmt]
    if fmt != "caffe2":
        return {keys[k]: v for k, v in state.items()}
    blobs: Dict[str, Any] = {keys[k]: v.numpy() for k, v in state.items() if k in keys}
    blobs["conv1_w_momentum"] = np.zeros(4, dtype=np.float32)
    blobs["lr"] = np.array([0.1], dtype=np.float32)
    blobs["model_iter"] = np.array([1000], dtype=np.int64)
    return {"blobs": blobs}


def _assert_loaded(model: nn.Module, reference: nn.Module) -> None:
    expected = reference.state_dict()
    actual = model.state_dict()
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


# --------------------------------------------------------------------------------------------
# Python-2 style pickles (what the Caffe2 .pkl is)
# --------------------------------------------------------------------------------------------
class _Py2Pickler(pickle._Pickler):
    """Protocol 2 with every ``str``/``bytes`` written as a Python 2 ``str`` (BINSTRING), the way
    Detectron/Caffe2 wrote its ``.pkl`` files; read back only with ``encoding="latin1"``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: Any) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def _py2_pickle(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    # Python 2 numpy named its reconstructor numpy.core.multiarray
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


class _RunsShell:
    """Unpickling this runs ``touch marker`` through ``os.system``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class _OpensFile:
    """Unpickling this creates ``marker`` through ``builtins.open``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tiny_meta(num_classes: int = 5, **model_kwargs: Any) -> WeightsMeta:
    protocol = VideoInput(frames=4, sampling_rate=2, short_side=8, crop=8)
    cost = Compute(1.0, "GMACs", protocol.clip_shape, "test")
    return WeightsMeta(
        display_name="TinyNet",
        input=protocol,
        num_classes=num_classes,
        num_params=1,
        macs_per_clip=cost,
        macs_per_step=cost,
        variants=(Variant({}, 3, 2),),
        model_kwargs=model_kwargs,
    )


def _tiny_enum(url: str, sha256: Any, fmt: str = "pytorchvideo", **meta: Any) -> type:
    """A WeightsEnum with one member (and its DEFAULT alias) for ``url``."""
    entry = Weights(url=url, sha256=sha256, source_format=fmt, meta=_tiny_meta(**meta))
    return WeightsEnum("TinyNet_Weights", {"KINETICS400_TEST": entry, "DEFAULT": entry})


def _cache_files(hub_dir: Path) -> List[str]:
    return sorted(p.name for p in hub_dir.iterdir()) if hub_dir.exists() else []


# --------------------------------------------------------------------------------------------
# Loading: by URL, path, file://, member
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["pytorchvideo", "pyslowfast", "cozoo"])
def test_load_by_url_detects_the_format_and_caches(server, hub_dir, fmt):
    reference = _reference()
    url = server.publish(
        f"tiny_{fmt}.pyth", _torch_bytes({"model_state": _in_format(reference, fmt)})
    )
    model = TinyNet()
    with pytest.warns(UnpinnedChecksumWarning):
        assert load_weights(model, url, progress=False) is model
    _assert_loaded(model, reference)
    assert model.formats_seen == [fmt]
    assert _cache_files(hub_dir) == [W.cache_path(url).name]
    assert W.cache_path(url).name.startswith(f"tiny_{fmt}-")
    with pytest.warns(UnpinnedChecksumWarning):
        load_weights(TinyNet(), url, progress=False)
    assert server.requests == [f"/tiny_{fmt}.pyth"], "the second load reads the cache"


def test_load_by_path_and_file_url(tmp_path):
    reference = _reference()
    path = tmp_path / "tiny.pth"
    torch.save({"state_dict": _in_format(reference, "pyslowfast"), "epoch": 3}, path)
    for weights in (path, str(path), path.as_uri()):
        model = TinyNet()
        load_weights(model, weights)
        _assert_loaded(model, reference)
        assert model.formats_seen == ["pyslowfast"]


def test_a_bare_state_dict_with_the_models_own_keys_is_cozoo_format(tmp_path):
    reference = _reference()
    path = tmp_path / "bare.pt"
    torch.save(reference.state_dict(), path)
    model = load_weights(TinyNet(), path)
    _assert_loaded(model, reference)
    assert model.formats_seen == ["cozoo"]
    # a model without convert_state_dict takes its own keys as they are
    plain = nn.Linear(3, 2)
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "linear.pt")
    load_weights(plain, tmp_path / "linear.pt")
    torch.save({"blocks.0.weight": torch.zeros(2, 3)}, tmp_path / "pv.pt")
    with pytest.raises(StateDictMismatchError, match="blocks.0.weight"):
        load_weights(plain, tmp_path / "pv.pt")
    with pytest.raises(WeightsError, match="cannot load the 'pytorchvideo' checkpoint"):
        load_weights(plain, "DEFAULT", _tiny_enum((tmp_path / "pv.pt").as_uri(), None))


def test_load_member_with_pinned_hash_by_name_and_default(server, hub_dir, recwarn):
    reference = _reference()
    data = _torch_bytes({"model_state": _in_format(reference, "pytorchvideo"), "epoch": 1})
    url = server.publish("tiny_pinned.pyth", data)
    enum_cls = _tiny_enum(url, _sha(data))
    for weights in (enum_cls.DEFAULT, "KINETICS400_TEST", "DEFAULT"):
        model = load_weights(TinyNet(), weights, enum_cls, progress=False)
        _assert_loaded(model, reference)
    assert not [w for w in recwarn if issubclass(w.category, UnpinnedChecksumWarning)]
    assert len(server.requests) == 1
    assert enum_cls.DEFAULT.get_state_dict(progress=False).keys() == set(
        TinyNet.SOURCE_KEYS["pytorchvideo"].values()
    )


def test_member_of_another_model_or_unknown_name_is_refused(hub_dir):
    with pytest.raises(TypeError, match="CoX3D_M_Weights"):
        load_weights(TinyNet(), CoX3D_S_Weights.DEFAULT, CoX3D_M_Weights)
    with pytest.raises(ValueError, match="KINETICS400_PYSLOWFAST"):
        load_weights(TinyNet(), "NO_SUCH_WEIGHTS", CoX3D_M_Weights)
    with pytest.raises(ValueError, match="WeightsEnum"):
        load_weights(TinyNet(), "DEFAULT")
    with pytest.raises(TypeError):
        load_weights(TinyNet(), 42)
    model = TinyNet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert load_weights(model, None, CoX3D_M_Weights) is model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert _cache_files(hub_dir) == []


def test_progress_bar_download(server, hub_dir, capsys):
    reference = _reference()
    data = _torch_bytes(_in_format(reference, "pytorchvideo"))
    url = server.publish("tiny_progress.pyth", data)
    model = load_weights(TinyNet(), _tiny_enum(url, _sha(data)).DEFAULT, progress=True)
    _assert_loaded(model, reference)


# --------------------------------------------------------------------------------------------
# Checksums and broken downloads
# --------------------------------------------------------------------------------------------
def test_pinned_hash_mismatch_is_refused_and_the_download_deleted(server, hub_dir):
    data = _torch_bytes(_in_format(_reference(), "pytorchvideo"))
    url = server.publish("tiny_tampered.pyth", data)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        load_weights(TinyNet(), "DEFAULT", _tiny_enum(url, wrong), progress=False)
    message = str(info.value)
    assert "tiny_tampered" in message and url in message
    assert wrong in message and _sha(data) in message
    assert _cache_files(hub_dir) == [], "neither the file nor a partial download is left"


def test_a_cached_file_that_fails_the_pinned_hash_is_downloaded_again(server, hub_dir):
    reference = _reference()
    data = _torch_bytes(_in_format(reference, "pytorchvideo"))
    url = server.publish("tiny_stale.pyth", data)
    W.cache_path(url).parent.mkdir(parents=True)
    W.cache_path(url).write_bytes(b"stale")
    model = load_weights(TinyNet(), "DEFAULT", _tiny_enum(url, _sha(data)), progress=False)
    _assert_loaded(model, reference)
    assert W.cache_path(url).read_bytes() == data
    assert server.requests == ["/tiny_stale.pyth"]


def test_unpinned_hash_is_computed_and_reported(server, hub_dir, caplog):
    caplog.set_level("INFO", logger="cozoo.models._hub")
    data = _torch_bytes(_in_format(_reference(), "pytorchvideo"))
    url = server.publish("tiny_unpinned.pyth", data)
    with pytest.warns(UnpinnedChecksumWarning, match=_sha(data)):
        load_weights(TinyNet(), "DEFAULT", _tiny_enum(url, None), progress=False)
    assert _sha(data) in caplog.text
    assert W.sha256sum(W.cache_path(url)) == _sha(data)


def test_local_file_with_pinned_hash_mismatch_is_refused_not_deleted(tmp_path):
    path = tmp_path / "local.pth"
    torch.save(_in_format(_reference(), "pytorchvideo"), path)
    enum_cls = _tiny_enum(path.as_uri(), "f" * 64)
    with pytest.raises(ChecksumError, match="f" * 64):
        load_weights(TinyNet(), "DEFAULT", enum_cls)
    assert path.is_file()
    good = _tiny_enum(path.as_uri(), W.sha256sum(path))
    load_weights(TinyNet(), "DEFAULT", good)


def test_truncated_download_is_an_error_and_leaves_nothing(server, hub_dir):
    """A transfer cut short fails the pinned hash; unpinned, it fails to read as a checkpoint.
    Either way nothing is left in the cache."""
    data = _torch_bytes(_in_format(_reference(), "pytorchvideo"))
    server.publish("tiny_cut.pyth", data)
    url = server.url("truncated/tiny_cut.pyth")
    with pytest.raises(ChecksumError) as info:
        load_weights(TinyNet(), "DEFAULT", _tiny_enum(url, _sha(data)), progress=False)
    assert url in str(info.value)
    assert _cache_files(hub_dir) == []
    with pytest.warns(UnpinnedChecksumWarning):
        with pytest.raises(WeightsError, match="corrupt or truncated") as info:
            load_weights(TinyNet(), url, progress=False)
    assert "tiny_cut" in str(info.value)
    assert _cache_files(hub_dir) == []


def test_corrupt_download_is_a_clear_error_and_removed_from_the_cache(server, hub_dir):
    url = server.publish("tiny_garbage.pyth", os.urandom(4096))
    with pytest.warns(UnpinnedChecksumWarning):
        with pytest.raises(WeightsError, match="corrupt or truncated") as info:
            load_weights(TinyNet(), url, progress=False)
    assert "tiny_garbage" in str(info.value) and "deleted" in str(info.value)
    assert _cache_files(hub_dir) == []
    # a zip cut in half (a torch file truncated on disk) is reported the same way
    data = _torch_bytes(_in_format(_reference(), "pytorchvideo"))
    half = server.root / "half.pyth"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        load_weights(TinyNet(), half)
    assert half.is_file(), "a local file is never deleted"


def test_http_error_names_the_url(server, hub_dir):
    url = server.url("no_such_file.pyth")
    with pytest.raises(WeightsError, match="404") as info:
        load_weights(TinyNet(), url, progress=False)
    assert url in str(info.value)
    assert _cache_files(hub_dir) == []


def test_missing_local_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_weights(TinyNet(), (tmp_path / "nope.pth").as_uri())
    with pytest.raises(ValueError, match="neither an existing file nor a URL"):
        load_weights(TinyNet(), str(tmp_path / "nope.pth"))


# --------------------------------------------------------------------------------------------
# Reading safely: Caffe2 pickles, weights_only
# --------------------------------------------------------------------------------------------
def test_caffe2_python2_pickle_loads_via_path_url_and_member(server, hub_dir, tmp_path):
    reference = _reference()
    data = _py2_pickle(_in_format(reference, "caffe2"))
    assert b"cnumpy.core.multiarray\n_reconstruct" in data and b"_codecs" not in data
    with pytest.raises(UnicodeDecodeError):  # really a Python 2 pickle: needs latin1
        pickle.loads(data)
    path = tmp_path / "I3D_tiny.pkl"
    path.write_bytes(data)
    model = load_weights(TinyNet(), path)
    _assert_loaded(model, reference)
    assert model.formats_seen == ["caffe2"]
    url = server.publish("I3D_tiny.pkl", data)
    model = load_weights(TinyNet(), "DEFAULT", _tiny_enum(url, _sha(data), "caffe2"))
    _assert_loaded(model, reference)
    state = W.load_checkpoint(path)
    assert detect_source_format(state) == "caffe2" and isinstance(state["lr"], torch.Tensor)
    assert state["conv1_w"].dtype == torch.float32


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_caffe2_pickles_rewritten_by_python3_load(tmp_path, protocol):
    reference = _reference()
    blobs = _in_format(reference, "caffe2")
    blobs["blobs"]["model_iter"] = np.int64(7)  # a numpy scalar
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(blobs, protocol=protocol))
    state = W.load_checkpoint(path)
    assert detect_source_format(state) == "caffe2"
    assert state["model_iter"].ndim == 0 and int(state["model_iter"]) == 7
    model = load_weights(TinyNet(), path)
    _assert_loaded(model, reference)


@pytest.mark.parametrize("payload", [_RunsShell, _OpensFile], ids=["os.system", "open"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "marker"
    blobs = _in_format(_reference(), "caffe2")
    blobs["blobs"]["pred_w_momentum"] = payload(marker)
    data = pickle.dumps(blobs, protocol=2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafeCheckpointError, match="refused") as info:
        load_weights(TinyNet(), path)
    assert "evil.pkl" in str(info.value)
    assert not marker.exists(), "the payload ran"
    pickle.loads(data)  # the payload is live: a plain unpickler runs it
    assert marker.exists()


def test_python2_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil_py2.pkl"
    path.write_bytes(_py2_pickle({"blobs": {"w": _RunsShell(marker)}}))
    with pytest.raises(UnsafeCheckpointError, match="system"):
        W.read_checkpoint(path)
    assert not marker.exists()


def test_torch_checkpoint_with_a_non_tensor_object_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pyth"
    torch.save(
        {"model_state": _in_format(_reference(), "pytorchvideo"), "cfg": _OpensFile(marker)}, path
    )
    with pytest.raises(UnsafeCheckpointError, match="weights_only") as info:
        load_weights(TinyNet(), path)
    assert "evil.pyth" in str(info.value)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is live
    assert marker.exists()


def test_unwrap_and_format_detection_by_content():
    def detect(checkpoint: Any) -> str:
        return detect_source_format(W.unwrap(checkpoint))

    assert detect({"blobs": {"conv1_w": np.zeros(1)}}) == "caffe2"
    assert detect({"model_state": {"s1.pathway0_stem.conv.weight": torch.ones(1)}}) == (
        "pyslowfast"
    )
    assert detect({"blocks.0.conv.weight": torch.ones(1)}) == "pytorchvideo"
    assert detect({"state_dict": {"stem.weight": torch.ones(1)}, "epoch": 3}) == "cozoo"
    assert detect({"model": {"stem.weight": torch.ones(1)}}) == "cozoo"
    blobs = W.unwrap({"blobs": {"conv1_w": np.zeros((2, 3), dtype=">f4")}})
    assert isinstance(blobs["conv1_w"], torch.Tensor) and blobs["conv1_w"].shape == (2, 3)
    with pytest.raises(WeightsError, match="top-level keys: 'epoch', 'cfg'|epoch, cfg"):
        W.unwrap({"epoch": 3, "cfg": "yaml"})
    with pytest.raises(WeightsError, match="list"):
        W.unwrap([torch.ones(1)])


def test_trainer_prefixes_are_stripped_only_when_every_key_has_them():
    own = ["stem.weight", "head.bias"]
    state = {"model.stem.weight": 1, "model.head.bias": 2}
    assert W._keys.strip_wrapper_prefix(state, own) == {"stem.weight": 1, "head.bias": 2}
    ddp = {"module.model.stem.weight": 1, "module.model.head.bias": 2}
    assert W._keys.strip_wrapper_prefix(ddp, own) == {"stem.weight": 1, "head.bias": 2}
    mixed = {"model.stem.weight": 1, "head.bias": 2}
    assert W._keys.strip_wrapper_prefix(mixed, own) == mixed
    nested = ["model.stem.weight", "model.head.bias"]  # the model's own keys have the prefix
    assert W._keys.strip_wrapper_prefix(state, nested) == state


# --------------------------------------------------------------------------------------------
# Strict loading with a readable diff
# --------------------------------------------------------------------------------------------
def test_mismatch_lists_missing_unexpected_and_misshaped_keys(tmp_path):
    state = _in_format(_reference(num_classes=7), "pyslowfast")
    del state["s1.pathway0_stem.bn.running_var"]
    state["s1.pathway0_stem.extra.weight"] = torch.zeros(3)
    path = tmp_path / "other_head.pyth"
    torch.save({"model_state": state}, path)
    with pytest.raises(StateDictMismatchError) as info:
        load_weights(TinyNet(num_classes=5), path)
    message = str(info.value)
    assert "TinyNet" in message and "other_head.pyth" in message and "pyslowfast" in message
    assert "1 missing, 1 unexpected, 2 misshaped" in message
    assert "missing from the checkpoint (1):\n    norm.running_var" in message
    assert "unexpected in the checkpoint (1):\n    s1.pathway0_stem.extra.weight" in message
    assert "head.weight: [7, 4] in the checkpoint, [5, 4] in the model" in message
    assert "head.bias: [7] in the checkpoint, [5] in the model" in message


def test_mismatch_message_is_truncated(tmp_path):
    state = _reference().state_dict()
    state.update({f"junk.{i}.weight": torch.zeros(1) for i in range(40)})
    path = tmp_path / "junk.pt"
    torch.save(state, path)
    with pytest.raises(StateDictMismatchError) as info:
        load_weights(TinyNet(), path)
    message = str(info.value)
    assert "unexpected in the checkpoint (40)" in message
    assert f"... and {40 - W._keys.MAX_LISTED_KEYS} more" in message
    assert "junk.39.weight" not in message
    assert len(message.splitlines()) < 20


# --------------------------------------------------------------------------------------------
# The zoo's architectures (when they exist): every registered model loads, hubconf exposes it
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", W.list_models())
def test_every_registered_model_loads_a_served_checkpoint(server, hub_dir, name):
    reference = W.create_model(name)
    with torch.no_grad():
        # learnt values only: fixed buffers (a skeleton graph ``A``) are checked on loading
        for key, tensor in reference.state_dict().items():
            learnt = key.endswith(("running_mean", "running_var")) or not any(
                key == k for k, _ in reference.named_buffers()
            )
            if tensor.is_floating_point() and learnt:
                tensor.copy_(torch.rand_like(tensor))
    url = server.publish(f"{name}.pth", _torch_bytes({"state_dict": reference.state_dict()}))
    with pytest.warns(UnpinnedChecksumWarning):
        model = W.create_model(name, weights=url)
    _assert_loaded(model, reference)


def test_hubconf_exposes_every_registered_model():
    names = W.list_models()
    get_model_builder = W.get_model_builder

    spec = importlib.util.spec_from_file_location("cozoo_hubconf", REPO_ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert hubconf.dependencies == ["torch"]
    for name in names:
        assert getattr(hubconf, name) is get_model_builder(name)
    assert set(names) <= set(hubconf.__all__)
    assert {"list_models", "create_model", "get_model_weights"} <= set(hubconf.__all__)
    assert hubconf.list_models() == names


def test_torch_hub_load_builds_and_loads(server, hub_dir):
    name = W.list_models()[0]
    reference = torch.hub.load(str(REPO_ROOT), name, source="local")
    url = server.publish(f"hub_{name}.pth", _torch_bytes(reference.state_dict()))
    with pytest.warns(UnpinnedChecksumWarning):
        model = torch.hub.load(str(REPO_ROOT), name, source="local", weights=url)
    _assert_loaded(model, reference)


def test_a_pytorchvideo_hub_checkpoint_is_detected_and_loaded(server, hub_dir):
    """The detection feeds the architecture's own mapping: pytorchvideo's ``x3d_s`` state dict
    (random weights, ``pretrained=False``) served as a ``.pyth`` loads into ``cox3d_s``."""
    create_model = W.create_model
    import pytorchvideo.models.hub as hub

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytorchvideo's own deprecation warnings
        x3d_s = hub.x3d_s(pretrained=False)
    url = server.publish("X3D_S.pyth", _torch_bytes({"model_state": x3d_s.state_dict()}))
    with pytest.warns(UnpinnedChecksumWarning):
        model = create_model("cox3d_s", weights=url)
    converted = model.convert_state_dict(x3d_s.state_dict(), "pytorchvideo")
    _assert_loaded(model, _StateHolder(converted))


class _StateHolder:
    """Gives a plain dict the ``state_dict()`` of a module."""

    def __init__(self, state: Dict[str, Any]):
        self.state = state

    def state_dict(self) -> Dict[str, Any]:
        return self.state


# --------------------------------------------------------------------------------------------
# Entries and the builder helper
# --------------------------------------------------------------------------------------------
def test_weights_validate_their_fields():
    meta = _tiny_meta()
    with pytest.raises(ValueError, match="sha256"):
        Weights("https://example.org/a.pth", "abc", "cozoo", meta)
    with pytest.raises(ValueError, match="source_format"):
        Weights("https://example.org/a.pth", None, "Not a name!", meta)
    with pytest.raises(ValueError, match="URL"):
        Weights("ftp://example.org/a.pth", None, "cozoo", meta)
    with pytest.raises(TypeError, match="WeightsMeta"):
        Weights("https://example.org/a.pth", None, "cozoo", {"num_params": 1})
    assert Weights(None, None, "cozoo", meta).file_name is None


def test_an_entry_without_url_asks_for_a_local_file(tmp_path):
    enum_cls = WeightsEnum("NoUrl_Weights", {"NTU60": Weights(None, None, "cozoo", _tiny_meta())})
    with pytest.raises(WeightsError, match="no public download URL.*weights=/path"):
        load_weights(TinyNet(), "NTU60", enum_cls)


class _Configurable(TinyNet):
    """A TinyNet whose builder kwargs are visible: ``num_classes`` and ``width``."""

    def __init__(self, num_classes: int = 5, width: str = "plain"):
        super().__init__(num_classes)
        self.width = width


def test_build_model_takes_num_classes_and_model_kwargs_from_a_members_meta(tmp_path):
    reference = _reference(num_classes=3)
    path = tmp_path / "three.pt"
    torch.save(_in_format(reference, "pytorchvideo"), path)
    enum_cls = _tiny_enum(path.as_uri(), None, num_classes=3, width="wide")
    model = build_model(_Configurable, enum_cls, "DEFAULT")
    assert model.head.out_features == 3 and model.width == "wide"
    _assert_loaded(model, reference)
    with pytest.raises(ValueError, match="need num_classes=3, got num_classes=5"):
        build_model(_Configurable, enum_cls, "DEFAULT", num_classes=5)
    assert build_model(_Configurable, enum_cls, None, num_classes=7).head.out_features == 7


@pytest.mark.parametrize("layout", ["nested", "legacy"])
def test_a_training_runs_checkpoint_builds_the_model_it_trained(tmp_path, layout):
    """``weights=<run>/checkpoints/last.ckpt``: the LightningModule's ``model.`` prefix is
    stripped and the architecture kwargs come from the saved hyper-parameters."""
    reference = _reference(num_classes=6)
    if layout == "nested":
        hparams = {"model": {"name": "tiny", "num_classes": 6, "width": "wide", "weights": None}}
    else:  # cozoo 0.1 checkpoints: flat hyper-parameters
        hparams = {"arch": "tiny", "num_classes": 6, "pool_size": 8, "lr": 0.1}
    checkpoint = {
        "state_dict": {f"model.{k}": v for k, v in reference.state_dict().items()},
        "hyper_parameters": hparams,
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
        "epoch": 3,
    }
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    model = build_model(_Configurable, None, str(path))
    _assert_loaded(model, reference)
    assert model.head.out_features == 6
    assert model.width == ("wide" if layout == "nested" else "plain")
    with pytest.raises(StateDictMismatchError, match="head.weight: \\[6, 4\\] in the checkpoint"):
        build_model(_Configurable, None, str(path), num_classes=5)  # given kwargs win


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------
def test_registry_lists_by_family_and_task_and_finds_weights_by_name():
    video = W.list_models(family="video")
    skeleton = W.list_models(family="skeleton")
    detection = W.list_models(family="detection")
    assert sorted(video + skeleton + detection) == W.list_models() and "cox3d_m" in video
    assert "costgcn_mod" in skeleton and "str" in skeleton
    assert W.list_models(family="family_does_not_exist") == []
    assert W.list_models("cox3d_*", task="classification") == ["cox3d_l", "cox3d_m", "cox3d_s"]
    assert W.list_models(task="detection") == detection
    assert detection == ["cooadtr_b1", "cooadtr_b2", "oadtr", "oadtr_b1", "oadtr_b2"]
    info = W.get_model_info("cox3d_m")
    assert (info.family, info.task, info.display_name) == ("video", "classification", "CoX3D-M")
    assert info.input == CoX3D_M_Weights.DEFAULT.meta.input
    assert W.get_weight("CoX3D_M_Weights.DEFAULT") is CoX3D_M_Weights.KINETICS400_PYSLOWFAST
    assert W.get_weight("CoX3D_S_Weights.KINETICS400_PYTORCHVIDEO").source_format == (
        "pytorchvideo"
    )
    with pytest.raises(ValueError, match="CoX3D_M_Weights"):
        W.get_weight("NoSuch_Weights.DEFAULT")
    with pytest.raises(KeyError, match="cox3d_m"):
        W.get_model_info("cox3d_xxl")


def test_register_model_refuses_duplicates_and_needs_a_family_outside_cozoo():
    with pytest.raises(ValueError, match="already registered"):
        W.register_model(family="video")(W.get_model_builder("cox3d_m"))

    def my_net(*, weights=None):
        return nn.Linear(2, 2)

    with pytest.raises(ValueError, match="family="):
        W.register_model()(my_net)
    assert "my_net" not in W.list_models()
