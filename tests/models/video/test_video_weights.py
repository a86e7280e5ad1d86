"""The published video checkpoints: one weights entry per released file, meta as published.

The figures are those of Hedegaard & Iosifidis, "Continual 3D Convolutional Neural Networks for
Real-time Processing of Videos" (ECCV 2022) and of the releasing model zoos; the architecture
tests (``test_video_models.py``) recompute params, MACs, receptive fields and delays from the
networks.
"""

from __future__ import annotations

import pytest

from cozoo.models import (
    CoI3D_Weights,
    CoSlow_Weights,
    CoX3D_L_Weights,
    CoX3D_M_Weights,
    CoX3D_S_Weights,
    VideoInput,
    WeightsEnum,
    WeightsMeta,
)

ENUMS = [CoX3D_S_Weights, CoX3D_M_Weights, CoX3D_L_Weights, CoSlow_Weights, CoI3D_Weights]
MEMBERS = [member for enum_cls in ENUMS for member in enum_cls]

PYTORCHVIDEO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/"
URLS = {
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
FORMATS = {"x3d_models": "pyslowfast", "pytorchvideo": "pytorchvideo", ".pkl": "caffe2"}
# Kinetics-400 top-1 (%) per pool size of the continual models (Hedegaard & Iosifidis, ECCV 2022)
TOP1 = {
    CoX3D_S_Weights: {13: 60.18, 64: 67.33},
    CoX3D_M_Weights: {16: 62.80, 64: 71.03},
    CoX3D_L_Weights: {16: 63.03, 64: 71.61},
    CoSlow_Weights: {8: 65.90, 64: 73.05},
    CoI3D_Weights: {8: 59.58, 64: 56.86},
}
# (RF offset, delay offset, total temporal padding): RF = a + P, delay = b + P
TEMPORAL = {
    CoX3D_S_Weights: (56, 27, 28),
    CoX3D_M_Weights: (56, 27, 28),
    CoX3D_L_Weights: (114, 56, 57),
    CoSlow_Weights: (18, 8, 9),
    CoI3D_Weights: (34, 16, 17),
}
# the Kinetics test protocol: frames, sampling rate, short side = crop
PROTOCOL = {
    CoX3D_S_Weights: (13, 6, 160),
    CoX3D_M_Weights: (16, 5, 224),
    CoX3D_L_Weights: (16, 5, 312),
    CoSlow_Weights: (8, 8, 256),
    CoI3D_Weights: (8, 8, 224),
}
# published (GMACs per clip, GMACs per step, params)
COST = {
    CoX3D_S_Weights: (2.06, 0.17, 3_794_322),
    CoX3D_M_Weights: (4.97, 0.33, 3_794_322),
    CoX3D_L_Weights: (19.17, 1.25, 6_153_432),
    CoSlow_Weights: (54.87, 6.90, 32_454_096),
    CoI3D_Weights: (28.61, 5.68, 28_043_472),
}


def test_every_published_file_has_one_member():
    assert set(MEMBERS) == set(URLS)
    for member, url in URLS.items():
        assert member.url == url
        expected = [f for marker, f in FORMATS.items() if marker in url]
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
def test_meta_is_complete_with_units(member: WeightsEnum):
    meta = member.meta
    assert isinstance(meta, WeightsMeta) and isinstance(meta.input, VideoInput)
    assert member.transforms is meta.input and meta.input.kind == "video"
    assert isinstance(meta.num_params, int) and meta.num_params > 0
    for compute, shape in (
        (meta.macs_per_clip, meta.input.clip_shape),
        (meta.macs_per_step, meta.input.step_shape),
    ):
        assert compute.unit == "GMACs" and compute.value > 0 and compute.source
        assert tuple(compute.input) == shape
    assert meta.num_classes == 400
    assert meta.license and meta.source and meta.display_name.startswith("Co")
    assert meta.recipe is None or isinstance(meta.recipe, str)
    if not meta.published:
        assert meta.published_note, "an entry without published numbers says why"
    for result in meta.published:
        assert result.unit in ("%", "MB", "predictions/s") and result.source
        assert meta.variant(**result.variant) is not None, "a result names a listed variant"
        if result.metric == "top-1 accuracy":
            assert (result.dataset, result.unit) == ("Kinetics-400", "%") and result.views
    assert meta.baseline is not None and meta.baseline.find("top-1 accuracy") is not None
    assert len(meta.input.mean) == len(meta.input.std) == 3


@pytest.mark.parametrize("enum_cls", ENUMS, ids=lambda e: e.__name__)
def test_meta_numbers_are_the_published_ones(enum_cls: type):
    default = enum_cls.DEFAULT
    top1 = {r.variant["pool_size"]: r.value for r in default.meta.results("top-1 accuracy")}
    assert top1 == TOP1[enum_cls]
    assert default.meta.recipe is not None
    clip, step, params = COST[enum_cls]
    frames, rate, side = PROTOCOL[enum_cls]
    rf_offset, delay_offset, padding = TEMPORAL[enum_cls]
    for member in enum_cls:
        meta = member.meta
        assert meta.macs_per_clip.value == clip and meta.macs_per_step.value == step
        assert meta.num_params == params
        protocol = member.transforms
        assert (protocol.frames, protocol.sampling_rate) == (frames, rate)
        assert protocol.short_side == protocol.crop == side
        assert protocol.mean == (0.45,) * 3 and protocol.std == (0.225,) * 3
        assert {v.kwargs["pool_size"] for v in meta.variants} == set(TOP1[enum_cls])
        for variant in meta.variants:
            pool = variant.kwargs["pool_size"]
            assert variant.receptive_field == rf_offset + pool
            assert variant.delay == delay_offset + pool
            assert variant.delay == variant.receptive_field - 1 - padding  # delay = RF - 1 - pad


def test_published_memory_and_cpu_figures_of_the_continual_and_clip_models():
    meta = CoX3D_M_Weights.DEFAULT.meta
    assert meta.find("memory", pool_size=64).value == 68.96
    assert meta.find("CPU throughput", pool_size=16).value == 7.57
    assert meta.baseline.display_name == "X3D-M"
    assert meta.baseline.find("top-1 accuracy").value == 67.24
    assert meta.baseline.find("CPU throughput").value == 0.83
    assert meta.find("top-1 accuracy", pool_size=32) is None


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
