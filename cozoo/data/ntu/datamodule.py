"""``NTUDataModule``: NTU RGB+D 60/120 skeleton sequences (or the generated sample) for training
and evaluation, on :class:`cozoo.data._base.RootOrSampleDataModule`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Optional, Tuple

from torch.utils.data import Dataset

from .._base import RootOrSampleDataModule, SampleInfo
from .._scan import ScanSummary
from . import sample
from .dataset import NTUSkeletons
from .features import check_modality, modality_channels
from .layouts import LAYOUTS, find_source, has_subset, scan
from .normalize import NUM_FRAMES
from .protocol import check_benchmark, class_names

__all__ = ["NTUDataModule"]

log = logging.getLogger(__name__)


class NTUDataModule(RootOrSampleDataModule):
    """NTU RGB+D 60 / 120 skeleton sequences (Shahroudy et al., CVPR 2016; Liu et al., TPAMI
    2019) pre-normalised as 2s-AGCN does (Shi et al., CVPR 2019), or a generated sample without
    a root.

    Batches are dicts ``{"skeleton": (B, C, T, V, M) float32, "label": (B,) int64, "name":
    list[str], "index": (B,) int64}``: ``C`` = 3 (6 for ``joint_bone``), ``T = frames``, ``V``
    = 25, ``M`` = 2. ``val`` and ``test`` are the same set: the published protocol evaluates on
    the ``val`` files.

    Roots (see :mod:`cozoo.data.ntu.layouts`): ``<root>/<benchmark>/<split>/`` holding the
    2s-AGCN files (``{train,val}_data_joint.npy``, ``{train,val}_label.pkl``; also ``<root>/
    <split>/`` or ``<root>`` itself), or a pyskl annotation pickle (``<root>`` the file, or
    ``<root>/[<benchmark>/]<benchmark>_3danno.pkl``). Raw ``.skeleton`` files are converted to
    the first with ``python -m cozoo.data.ntu prepare``.

    With ``root=None`` a generated sample of 6 motion classes in the 2s-AGCN layout
    (:mod:`cozoo.data.ntu.sample`) is written to ``<cache_dir>/ntu/`` (default ``$COZOO_CACHE``
    or ``~/.cache/cozoo``) and read through the same code, with a loud warning.

    Args:
        root: dataset root, or None for the generated sample.
        benchmark: ``"ntu60"`` or ``"ntu120"``.
        split: ``"xsub"`` or ``"xview"`` (ntu60), ``"xsub"`` or ``"xset"`` (ntu120).
        layout: ``"auto"`` (detected), ``"agcn_npy"`` or ``"pyskl"``.
        modality: ``joint``, ``bone``, ``joint_motion``, ``bone_motion`` or ``joint_bone``.
        frames: frames per clip, the first ones of the stored 300 (the published protocol: 300).
        batch_size, num_workers: loader settings (the same for every split).
        cache_dir: folder of the generated sample.
        sample_size: ``"tiny"``, ``"small"`` or ``"medium"`` (``sample.SAMPLE_SIZES``).
        seed: seed of the generated sample.
        pyskl_normalize: centre and rotate pyskl keypoints as 2s-AGCN does (they are stored in
            camera space); the repeat-padding to 300 frames is always done.
    """

    dataset_name = "NTU RGB+D"
    input_key = "skeleton"
    item_name = "skeleton sequence"
    sample_sizes = sample.SAMPLE_SIZES

    def __init__(
        self,
        root: Optional[str] = None,
        benchmark: str = "ntu60",
        split: str = "xsub",
        layout: str = "auto",
        modality: str = "joint",
        frames: int = NUM_FRAMES,
        batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: Optional[str] = None,
        sample_size: str = "small",
        seed: int = 0,
        pyskl_normalize: bool = True,
    ) -> None:
        check_benchmark(benchmark, split)
        check_modality(modality)
        if layout not in ("auto",) + LAYOUTS:
            raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
        if not 0 < int(frames) <= NUM_FRAMES:
            raise ValueError(f"frames must be in [1, {NUM_FRAMES}], got {frames}")
        super().__init__(
            root=root,
            cache_dir=cache_dir,
            sample_size=sample_size,
            seed=seed,
            batch_size=batch_size,
            num_workers=num_workers,
            benchmark=str(benchmark),
            split=str(split),
            layout=str(layout),
            modality=str(modality),
            frames=int(frames),
            pyskl_normalize=bool(pyskl_normalize),
        )
        self._source: Optional[Tuple[str, Path]] = None

    @classmethod
    def from_protocol(cls, protocol: Any, **kwargs: Any) -> NTUDataModule:
        """A data module with an input protocol: ``protocol`` is a mapping or an object with
        ``frames``, ``modality``, ``joints``, ``persons``, ``channels`` (a ``SkeletonInput``);
        ``kwargs`` override or add arguments. Raises ``ValueError`` for a protocol that NTU
        cannot give (another skeleton, not 2 persons, channels that do not fit the
        modality)."""
        get = protocol.get if isinstance(protocol, dict) else lambda k: getattr(protocol, k, None)
        graph, joints, persons = get("graph"), get("joints"), get("persons")
        if graph not in (None, "ntu") or joints not in (None, 25) or persons not in (None, 2):
            raise ValueError(
                f"NTU gives the 25-joint 'ntu' skeleton of 2 persons; the protocol asks for "
                f"graph={graph!r}, joints={joints!r}, persons={persons!r}"
            )
        args = {k: get(k) for k in ("frames", "modality") if get(k) is not None}
        channels = get("channels")
        modality = kwargs.get("modality", args.get("modality", "joint"))
        if channels is not None and channels != modality_channels(modality):
            raise ValueError(
                f"modality {modality!r} has {modality_channels(modality)} channels, "
                f"the protocol expects {channels}"
            )
        return cls(**{**args, **kwargs})

    @classmethod
    def from_model(cls, name: str, **kwargs: Any) -> NTUDataModule:
        """A data module with the input protocol of the registered model or weights entry
        ``name`` (``cozoo.models.get_model_info(name).input``, or the ``meta.input`` of the
        weights entry ``"<Enum>.<MEMBER>"``)."""
        from cozoo.models import get_model_info, get_weight

        try:
            protocol = get_model_info(name).input
        except (KeyError, ValueError):
            protocol = get_weight(name).meta.input
        if protocol is None or protocol.kind != "skeleton":
            raise ValueError(f"{name} has no skeleton input protocol (its input: {protocol!r})")
        return cls.from_protocol(protocol, **kwargs)

    # ---- hooks of RootOrSampleDataModule -------------------------------------------------------
    def ensure_sample(self) -> Path:
        """The generated sample (written on first use)."""
        h = self.hparams
        return sample.ensure_sample(h.cache_dir, h.sample_size, h.seed)

    def describe_sample(self) -> SampleInfo:
        per_class = sum(sample.SAMPLE_SIZES[self.hparams.sample_size])
        return SampleInfo(
            count=per_class * len(sample.SAMPLE_CLASSES),
            noun="skeleton sequences",
            class_names=sample.SAMPLE_CLASSES,
            class_kind="motion",
            layout="2s-AGCN NTU layout ({train,val}_data_joint.npy + _label.pkl)",
            real_root_example="/path/to/ntu (holding ntu60/xsub/...)",
        )

    @property
    def source(self) -> Tuple[str, Path]:
        """``(layout, location)`` of the data in use."""
        if self._source is None:
            h = self.hparams
            layout = "agcn_npy" if self.is_generated_sample else h.layout
            self._source = find_source(self.data_root, h.benchmark, h.split, layout)
        return self._source

    def has_split(self, split: str) -> bool:
        layout, location = self.source
        return has_subset(layout, location, self.hparams.split, split)

    def list_class_names(self, root: Path) -> List[str]:
        return class_names(self.hparams.benchmark)

    def _class_names_in_use(self) -> List[str]:
        if self.is_generated_sample:
            return list(sample.SAMPLE_CLASSES)
        return class_names(self.hparams.benchmark)

    def scan_split(self, split: str) -> ScanSummary:
        """Shapes, dtypes and labels of ``split``; unreadable modality files and annotations are
        reported by path and skipped."""
        h = self.hparams
        layout, location = self.source
        return scan(
            location,
            h.benchmark,
            h.split,
            split,
            layout=layout,
            modality=h.modality,
            class_names=self._class_names_in_use(),
            normalize=h.pyskl_normalize,
        )

    def build_dataset(self, split: str, report: ScanSummary) -> Dataset:
        """``(C, frames, 25, 2)`` clips of the readable items of the scan."""
        return NTUSkeletons(
            report.source,  # type: ignore[attr-defined]
            report.ok,
            modality=self.hparams.modality,
            frames=self.hparams.frames,
        )
