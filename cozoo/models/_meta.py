"""The typed facts of a weights entry: its input protocol and its published figures.

Every number the README table, the figures, the benchmark, ``evaluate`` and the recipes show
about a model lives here, once, in the ``WeightsMeta`` of its weights entry::

    WeightsMeta
      display_name, num_classes, num_params, license, source, recipe
      input            VideoInput (C, T, H, W) | SkeletonInput (C, T, V, M) | FeatureInput (D, T)
      macs_per_clip    Compute: the regular network on one clip, unit named ("GMACs")
      macs_per_step    Compute: the continual network on one step
      variants         Variant: builder kwargs (e.g. pool_size=64) -> receptive field, delay
      published        Result: metric, value, unit, dataset, variant, setting, source
      baseline         Baseline: the regular (clip) network's own published results
      model_kwargs     builder kwargs the checkpoint needs (e.g. a unit variant)

Published numbers are kept apart from reproduced ones: tests recompute params, MACs, receptive
fields and delays from the architectures and compare them with these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional, Tuple, Union

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "Baseline",
    "Compute",
    "FeatureInput",
    "InputSpec",
    "Result",
    "SkeletonInput",
    "Variant",
    "VideoInput",
    "WeightsMeta",
    "variant_label",
]

KINETICS_MEAN: Tuple[float, float, float] = (0.45, 0.45, 0.45)
KINETICS_STD: Tuple[float, float, float] = (0.225, 0.225, 0.225)


class _Input:
    """What every input kind tells: ``kind``, ``dims`` (the letters of one sample's clip
    shape, ``T`` for time), ``clip_shape`` and ``step_shape`` (the clip without ``T``)."""

    kind: ClassVar[str]
    dims: ClassVar[str]

    @property
    def clip_shape(self) -> Tuple[int, ...]:
        raise NotImplementedError

    @property
    def time_dim(self) -> int:
        """Index of ``T`` in ``clip_shape`` (add 1 for a batched clip)."""
        return self.dims.index("T")

    @property
    def step_shape(self) -> Tuple[int, ...]:
        """One step of one sample: ``clip_shape`` without ``T``."""
        shape = list(self.clip_shape)
        del shape[self.time_dim]
        return tuple(shape)


@dataclass(frozen=True)
class VideoInput(_Input):
    """How a video clip is prepared: decode, resample to ``fps``, take ``frames`` frames every
    ``sampling_rate``-th frame, scale to [0, 1], resize the short side to ``short_side``
    (bilinear), centre-crop ``crop``², normalise with ``mean``/``std`` per RGB channel. A
    continual model sees the same frames one step at a time. Clip ``(3, T, H, W)``."""

    frames: int
    sampling_rate: int
    short_side: int
    crop: int
    mean: Tuple[float, float, float] = KINETICS_MEAN
    std: Tuple[float, float, float] = KINETICS_STD
    fps: int = 30

    kind: ClassVar[str] = "video"
    dims: ClassVar[str] = "CTHW"

    @property
    def clip_shape(self) -> Tuple[int, int, int, int]:
        """``(C, T, H, W)`` of one clip."""
        return (3, self.frames, self.crop, self.crop)


@dataclass(frozen=True)
class SkeletonInput(_Input):
    """Joint coordinates of ``persons`` bodies of ``joints`` joints (``graph``: ``"ntu"`` 25
    joints, ``"kinetics"`` OpenPose-18) over ``frames`` frames, ``channels`` values per joint
    (3: x, y, z or x, y, score; 6: joint + bone). Clip ``(C, T, V, M)``."""

    frames: int = 300
    channels: int = 3
    joints: int = 25
    persons: int = 2
    graph: str = "ntu"
    modality: str = "joint"

    kind: ClassVar[str] = "skeleton"
    dims: ClassVar[str] = "CTVM"

    @property
    def clip_shape(self) -> Tuple[int, int, int, int]:
        """``(C, T, V, M)`` of one clip."""
        return (self.channels, self.frames, self.joints, self.persons)


@dataclass(frozen=True)
class FeatureInput(_Input):
    """Per-time-step feature vectors of ``dim`` values (``features`` names the extractor),
    ``frames`` steps per clip. Clip ``(D, T)``."""

    dim: int
    frames: int = 64
    features: str = ""

    kind: ClassVar[str] = "features"
    dims: ClassVar[str] = "DT"

    @property
    def clip_shape(self) -> Tuple[int, int]:
        """``(D, T)`` of one clip."""
        return (self.dim, self.frames)


InputSpec = Union[VideoInput, SkeletonInput, FeatureInput]


@dataclass(frozen=True)
class Compute:
    """A compute figure: ``value`` ``unit`` (``"GMACs"``: multiply-accumulates, which the papers
    call FLOPs) for one sample of shape ``input`` (batch 1), with its ``source``."""

    value: float
    unit: str
    input: Tuple[int, ...]
    source: str
    note: Optional[str] = None


def variant_label(kwargs: Mapping[str, Any]) -> str:
    """Builder kwargs as a label: ``{"pool_size": 64}`` -> ``"pool_size=64"``."""
    return ", ".join(f"{k}={v}" for k, v in kwargs.items())


@dataclass(frozen=True)
class Variant:
    """A configuration of the architecture that published figures refer to: builder
    ``kwargs`` (e.g. ``{"pool_size": 64}``), its ``receptive_field`` (input frames one output
    depends on) and ``delay`` (steps from a clean state to the first output)."""

    kwargs: Mapping[str, Any]
    receptive_field: int
    delay: int

    @property
    def label(self) -> str:
        """``"pool_size=64"`` (empty for the builder's defaults)."""
        return variant_label(self.kwargs)


@dataclass(frozen=True)
class Result:
    """One published number: ``value`` ``unit`` of ``metric`` (``"top-1 accuracy"``,
    ``"mAP"``, ``"memory"``, ``"throughput"``) on ``dataset``, for the model built with the
    builder kwargs ``variant`` and evaluated under ``setting`` (e.g. ``{"split": "xsub"}``)."""

    metric: str
    value: float
    unit: str
    dataset: Optional[str] = None
    variant: Mapping[str, Any] = field(default_factory=dict)
    setting: Mapping[str, Any] = field(default_factory=dict)
    views: Optional[str] = None
    source: str = ""
    note: Optional[str] = None

    def matches(self, metric: Optional[str] = None, **variant: Any) -> bool:
        """Whether this is a result of ``metric`` for a model built with ``variant``."""
        if metric is not None and self.metric != metric:
            return False
        return all(self.variant.get(k) == v for k, v in variant.items())


@dataclass(frozen=True)
class Baseline:
    """The regular (clip) network the continual model shares its weights with, and its own
    published results (``Result.variant`` empty)."""

    display_name: str
    results: Tuple[Result, ...] = ()
    builder: Optional[str] = None

    def find(self, metric: str) -> Optional[Result]:
        return next((r for r in self.results if r.metric == metric), None)


@dataclass(frozen=True)
class WeightsMeta:
    """The facts of one weights entry (see the module docstring)."""

    display_name: str
    input: InputSpec
    num_classes: int
    num_params: int
    macs_per_clip: Compute
    macs_per_step: Compute
    variants: Tuple[Variant, ...]
    published: Tuple[Result, ...] = ()
    published_note: Optional[str] = None
    baseline: Optional[Baseline] = None
    recipe: Optional[str] = None
    license: str = ""
    source: str = ""
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    temporal_note: Optional[str] = None

    def find(
        self, metric: str, setting: Optional[Mapping[str, Any]] = None, **variant: Any
    ) -> Optional[Result]:
        """The first published result of ``metric`` for ``variant`` (e.g. ``pool_size=64``)
        whose setting includes ``setting`` (e.g. ``{"streams": 2}``), or None."""
        wanted = dict(setting or {})
        return next(
            (
                r
                for r in self.published
                if r.matches(metric, **variant)
                and all(r.setting.get(k) == v for k, v in wanted.items())
            ),
            None,
        )

    def results(self, metric: Optional[str] = None) -> Tuple[Result, ...]:
        """The published results (of ``metric``)."""
        return tuple(r for r in self.published if r.matches(metric))

    def variant(self, **kwargs: Any) -> Optional[Variant]:
        """The variant built with ``kwargs``, or None."""
        return next((v for v in self.variants if dict(v.kwargs) == kwargs), None)
