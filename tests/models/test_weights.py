"""cozoo.models.weights: the weights entries, and downloading / verifying / reading / loading.

The loader is exercised end to end on checkpoints generated here and served by a loopback
HTTP server (127.0.0.1, ephemeral port, stops by itself), with ``TORCH_HOME`` in ``tmp_path``.
A tiny model with its own ``convert_state_dict`` stands in for the zoo architectures; when those
exist, every registered model is also loaded from a served checkpoint of its own state dict.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.util
import io
import os
import pickle
import shlex
import struct
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest
import torch
from torch import nn

from cozoo.models import weights as W
from cozoo.models.weights import (
    REQUIRED_META,
    ChecksumError,
    CoI3D_Weights,
    CoSlow_Weights,
    CoX3D_L_Weights,
    CoX3D_M_Weights,
    CoX3D_S_Weights,
    InputProtocol,
    StateDictMismatchError,
    UnpinnedChecksumWarning,
    UnsafeCheckpointError,
    Weights,
    WeightsEnum,
    WeightsError,
    load_weights,
)

ENUMS = [CoX3D_S_Weights, CoX3D_M_Weights, CoX3D_L_Weights, CoSlow_Weights, CoI3D_Weights]
MEMBERS = [member for enum_cls in ENUMS for member in enum_cls]
SERVER_LIFETIME_S = 120.0
REPO_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------------
# A tiny model in four key layouts
# --------------------------------------------------------------------------------------------
class TinyNet(nn.Module):
    """Stem conv + BN + linear head; maps the four source layouts onto its own keys."""

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


# --------------------------------------------------------------------------------------------
# Fixtures: hub dir in tmp_path, loopback HTTP server
# --------------------------------------------------------------------------------------------
@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``TORCH_HOME`` inside ``tmp_path``; returns the checkpoints cache folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert tmp_path in checkpoints.parents, "torch.hub.set_dir() was called: TORCH_HOME ignored"
    assert W.cache_dir() == checkpoints
    return checkpoints


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the files of a folder; ``/truncated/<name>`` announces the full length of
    ``<name>`` but sends only half of it."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if not self.path.startswith("/truncated/"):
            super().do_GET()
            return
        data = (Path(self.directory) / self.path[len("/truncated/") :]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


class _Server:
    def __init__(self, root: Path, httpd: http.server.HTTPServer):
        self.root = root
        self.httpd = httpd
        self.requests: List[str] = httpd.requests

    def url(self, name: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def publish(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(name)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    """An HTTP server on 127.0.0.1 (ephemeral port) serving ``tmp_path/www`` from a thread;
    it stops when the test ends, or by itself after ``SERVER_LIFETIME_S``."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    httpd.timeout = 0.1
    stop = threading.Event()
    deadline = time.monotonic() + SERVER_LIFETIME_S

    def serve() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            httpd.handle_request()

    thread = threading.Thread(target=serve, name="weights-test-http", daemon=True)
    thread.start()
    try:
        yield _Server(root, httpd)
    finally:
        stop.set()
        thread.join(timeout=5)
        httpd.server_close()


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tiny_enum(url: str, sha256: Any, fmt: str = "pytorchvideo") -> type:
    """A WeightsEnum with one member (and its DEFAULT alias) for ``url``."""
    entry = Weights(
        url=url,
        sha256=sha256,
        source_format=fmt,
        transforms=InputProtocol(frames=4, sampling_rate=2, short_side=8, crop=8),
        meta={},
    )
    return WeightsEnum("TinyNet_Weights", {"KINETICS400_TEST": entry, "DEFAULT": entry})


def _cache_files(hub_dir: Path) -> List[str]:
    return sorted(p.name for p in hub_dir.iterdir()) if hub_dir.exists() else []


# --------------------------------------------------------------------------------------------
# The published entries
# --------------------------------------------------------------------------------------------
PYTORCHVIDEO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
SPEC_URLS = {
    CoX3D_S_Weights.KINETICS400_PYSLOWFAST: (
        "https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/x3d_s.pyth"
    ),
    CoX3D_M_Weights.KINETICS400_PYSLOWFAST: (
        "https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/x3d_m.pyth"
    ),
    CoX3D_L_Weights.KINETICS400_PYSLOWFAST: (
        "https://dl.fbaipublicfiles.com/pyslowfast/x3d_models/x3d_l.pyth"
    ),
    CoX3D_S_Weights.KINETICS400_PYTORCHVIDEO: PYTORCHVIDEO + "X3D_S.pyth",
    CoX3D_M_Weights.KINETICS400_PYTORCHVIDEO: PYTORCHVIDEO + "X3D_M.pyth",
    CoX3D_L_Weights.KINETICS400_PYTORCHVIDEO: PYTORCHVIDEO + "X3D_L.pyth",
    CoSlow_Weights.KINETICS400_PYTORCHVIDEO: PYTORCHVIDEO + "SLOW_8x8_R50.pyth",
    CoI3D_Weights.KINETICS400_PYTORCHVIDEO: PYTORCHVIDEO + "I3D_8x8_R50.pyth",
    CoI3D_Weights.KINETICS400_CAFFE2: (
        "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/I3D_8x8_R50.pkl"
    ),
}
SPEC_FORMATS = {"x3d_models": "pyslowfast", "pytorchvideo": "pytorchvideo", ".pkl": "caffe2"}
# spec §6.1: Kinetics-400 top-1 (%) per pool size of the continual models
SPEC_TOP1 = {
    CoX3D_S_Weights: {13: 60.18, 64: 67.33},
    CoX3D_M_Weights: {16: 62.80, 64: 71.03},
    CoX3D_L_Weights: {16: 63.03, 64: 71.61},
    CoSlow_Weights: {8: 65.90, 64: 73.05},
    CoI3D_Weights: {8: 59.58, 64: 56.86},
}
# spec §3.4: (RF offset, delay offset, total temporal padding): RF = a + P, delay = b + P
SPEC_TEMPORAL = {
    CoX3D_S_Weights: (56, 27, 28),
    CoX3D_M_Weights: (56, 27, 28),
    CoX3D_L_Weights: (114, 56, 57),
    CoSlow_Weights: (18, 8, 9),
    CoI3D_Weights: (34, 16, 17),
}
# spec §5: frames, sampling rate, short side = crop
SPEC_PROTOCOL = {
    CoX3D_S_Weights: (13, 6, 160),
    CoX3D_M_Weights: (16, 5, 224),
    CoX3D_L_Weights: (16, 5, 312),
    CoSlow_Weights: (8, 8, 256),
    CoI3D_Weights: (8, 8, 224),
}
# spec §6.1 / §4.1 / §3.1: (GMACs per clip, GMACs per step, params)
SPEC_COST = {
    CoX3D_S_Weights: (2.06, 0.17, 3_794_322),
    CoX3D_M_Weights: (4.97, 0.33, 3_794_322),
    CoX3D_L_Weights: (19.17, 1.25, 6_153_432),
    CoSlow_Weights: (54.87, 6.90, 32_454_096),
    CoI3D_Weights: (28.61, 5.68, 28_043_472),
}


def test_every_published_file_of_the_spec_has_one_member():
    assert set(MEMBERS) == set(SPEC_URLS)
    for member, url in SPEC_URLS.items():
        assert member.url == url
        expected = [f for marker, f in SPEC_FORMATS.items() if marker in url]
        assert [member.source_format] == expected, member
        assert member.sha256 is None or len(member.sha256) == 64


def test_defaults_are_the_files_behind_the_published_numbers():
    for enum_cls in (CoX3D_S_Weights, CoX3D_M_Weights, CoX3D_L_Weights):
        assert enum_cls.DEFAULT is enum_cls.KINETICS400_PYSLOWFAST
    assert CoSlow_Weights.DEFAULT is CoSlow_Weights.KINETICS400_PYTORCHVIDEO
    assert CoI3D_Weights.DEFAULT is CoI3D_Weights.KINETICS400_CAFFE2
    assert CoI3D_Weights.DEFAULT.url.endswith(".pkl")
    for enum_cls in ENUMS:
        assert "DEFAULT" not in [m.name for m in enum_cls]  # an alias, not a member


@pytest.mark.parametrize("member", MEMBERS, ids=repr)
def test_meta_has_every_required_key_with_units(member: WeightsEnum):
    meta = member.meta
    assert set(REQUIRED_META) <= set(meta), set(REQUIRED_META) - set(meta)
    assert isinstance(meta["num_params"], int) and meta["num_params"] > 0
    for key, shape in (
        ("macs_per_clip", member.transforms.clip_shape),
        ("macs_per_step", member.transforms.step_shape),
    ):
        assert meta[key]["unit"] == "GMACs"
        assert meta[key]["value"] > 0
        assert tuple(meta[key]["input"]) == shape, key
        assert meta[key]["source"]
    assert meta["receptive_field"]["unit"] == "frames"
    assert meta["delay"]["unit"] == "steps"
    published = meta["published"]
    assert published["dataset"] == "Kinetics-400" and published["unit"] == "%"
    assert published["metric"] == "top-1 accuracy" and published["source"]
    if not published["per_pool_size"]:
        assert published["note"], "an entry without published numbers says why"
    assert meta["categories"] == 400
    assert meta["license"] and meta["source"]
    assert meta["recipe"] is None or isinstance(meta["recipe"], str)
    assert isinstance(member.transforms, InputProtocol)
    assert len(member.transforms.mean) == len(member.transforms.std) == 3


@pytest.mark.parametrize("enum_cls", ENUMS, ids=lambda e: e.__name__)
def test_meta_numbers_are_the_specs(enum_cls: type):
    default = enum_cls.DEFAULT
    assert default.meta["published"]["per_pool_size"] == SPEC_TOP1[enum_cls]
    assert default.meta["recipe"] is not None
    clip, step, params = SPEC_COST[enum_cls]
    frames, rate, side = SPEC_PROTOCOL[enum_cls]
    rf_offset, delay_offset, padding = SPEC_TEMPORAL[enum_cls]
    for member in enum_cls:
        meta = member.meta
        assert meta["macs_per_clip"]["value"] == clip and meta["macs_per_step"]["value"] == step
        assert meta["num_params"] == params
        protocol = member.transforms
        assert (protocol.frames, protocol.sampling_rate) == (frames, rate)
        assert protocol.short_side == protocol.crop == side
        assert protocol.mean == (0.45,) * 3 and protocol.std == (0.225,) * 3
        rf = meta["receptive_field"]["per_pool_size"]
        delay = meta["delay"]["per_pool_size"]
        assert set(rf) == set(delay) == set(SPEC_TOP1[enum_cls])
        for pool, frames_seen in rf.items():
            assert frames_seen == rf_offset + pool
            assert delay[pool] == delay_offset + pool
            assert delay[pool] == frames_seen - 1 - padding  # spec §1: delay = RF - 1 - padding


def test_verify_by_member_name_qualified_name_and_default():
    member = CoX3D_M_Weights.KINETICS400_PYTORCHVIDEO
    assert CoX3D_M_Weights.verify(member) is member
    assert CoX3D_M_Weights.verify("KINETICS400_PYTORCHVIDEO") is member
    assert CoX3D_M_Weights.verify("CoX3D_M_Weights.KINETICS400_PYTORCHVIDEO") is member
    assert CoX3D_M_Weights.verify("DEFAULT") is CoX3D_M_Weights.KINETICS400_PYSLOWFAST
    assert CoX3D_M_Weights.verify(None) is None
    with pytest.raises(ValueError, match="KINETICS400_PYSLOWFAST"):  # lists the choices
        CoX3D_M_Weights.verify("IMAGENET1K_V1")
    with pytest.raises(TypeError):
        CoX3D_M_Weights.verify(CoX3D_S_Weights.DEFAULT)
    assert repr(member) == "CoX3D_M_Weights.KINETICS400_PYTORCHVIDEO"
    assert member.value.file_name == "X3D_M.pyth"


def test_weights_validate_their_fields():
    protocol = InputProtocol(frames=1, sampling_rate=1, short_side=8, crop=8)
    with pytest.raises(ValueError, match="sha256"):
        Weights("https://example.org/a.pth", "abc", "cozoo", protocol)
    with pytest.raises(ValueError, match="source_format"):
        Weights("https://example.org/a.pth", None, "onnx", protocol)
    with pytest.raises(ValueError, match="URL"):
        Weights("ftp://example.org/a.pth", None, "cozoo", protocol)


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
    with pytest.raises(WeightsError, match="convert_state_dict"):
        load_weights(plain, tmp_path / "pv.pt")


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
    caplog.set_level("INFO", logger=W.__name__)
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
    data = _torch_bytes(_in_format(_reference(), "pytorchvideo"))
    server.publish("tiny_cut.pyth", data)
    url = server.url("truncated/tiny_cut.pyth")
    with pytest.raises(WeightsError, match=r"truncated|IncompleteRead") as info:
        load_weights(TinyNet(), url, progress=False)
    assert url in str(info.value)
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
    state, fmt = W.load_checkpoint(path)
    assert fmt == "caffe2" and isinstance(state["lr"], torch.Tensor)
    assert state["conv1_w"].dtype == torch.float32


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_caffe2_pickles_rewritten_by_python3_load(tmp_path, protocol):
    reference = _reference()
    blobs = _in_format(reference, "caffe2")
    blobs["blobs"]["model_iter"] = np.int64(7)  # a numpy scalar
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(blobs, protocol=protocol))
    state, fmt = W.load_checkpoint(path)
    assert fmt == "caffe2" and state["model_iter"].ndim == 0 and int(state["model_iter"]) == 7
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


def test_format_detection_by_content():
    assert W.detect_format({"blobs": {"conv1_w": np.zeros(1)}}) == "caffe2"
    assert W.detect_format({"model_state": {"s1.pathway0_stem.conv.weight": torch.ones(1)}}) == (
        "pyslowfast"
    )
    assert W.detect_format({"blocks.0.conv.weight": torch.ones(1)}) == "pytorchvideo"
    assert W.detect_format({"state_dict": {"stem.weight": torch.ones(1)}}) == "cozoo"
    with pytest.raises(WeightsError, match="top-level keys"):
        W.detect_format({"epoch": 3, "cfg": "yaml"})
    with pytest.raises(WeightsError, match="list"):
        W.extract_state_dict([torch.ones(1)], "cozoo")


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
    assert f"... and {40 - W.MAX_LISTED_KEYS} more" in message
    assert "junk.39.weight" not in message
    assert len(message.splitlines()) < 20


# --------------------------------------------------------------------------------------------
# The zoo's architectures (when they exist): every registered model loads, hubconf exposes it
# --------------------------------------------------------------------------------------------
def _zoo():
    try:
        from cozoo.models import create_model, list_models

        return create_model, list_models()
    except ImportError as error:
        pytest.skip(f"the zoo architectures are not importable yet: {error}")


def _registered() -> List[str]:
    try:
        from cozoo.models import list_models

        return list_models()
    except ImportError:
        return ["<architectures not importable>"]


@pytest.mark.parametrize("name", _registered())
def test_every_registered_model_loads_a_served_checkpoint(server, hub_dir, name):
    create_model, _ = _zoo()
    reference = create_model(name)
    with torch.no_grad():
        for tensor in reference.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor))
    url = server.publish(f"{name}.pth", _torch_bytes({"state_dict": reference.state_dict()}))
    with pytest.warns(UnpinnedChecksumWarning):
        model = create_model(name, weights=url)
    _assert_loaded(model, reference)


def test_hubconf_exposes_every_registered_model():
    _, names = _zoo()
    from cozoo.models._registry import get_model_builder

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
    _, names = _zoo()
    name = names[0]
    reference = torch.hub.load(str(REPO_ROOT), name, source="local")
    url = server.publish(f"hub_{name}.pth", _torch_bytes(reference.state_dict()))
    with pytest.warns(UnpinnedChecksumWarning):
        model = torch.hub.load(str(REPO_ROOT), name, source="local", weights=url)
    _assert_loaded(model, reference)


def test_a_pytorchvideo_hub_checkpoint_is_detected_and_loaded(server, hub_dir):
    """The detection feeds the architecture's own mapping: pytorchvideo's ``x3d_s`` state dict
    (random weights, ``pretrained=False``) served as a ``.pyth`` loads into ``cox3d_s``."""
    create_model, _ = _zoo()
    hub = pytest.importorskip("pytorchvideo.models.hub")
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
