"""``KineticsDataModule``: Kinetics-400 clips (or the generated Kinetics-layout sample) for
training and evaluation, on :class:`cozoo.data._base.RootOrSampleDataModule`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple

from torch.utils.data import Dataset

from .._base import RootOrSampleDataModule, SampleInfo
from .._scan import ScanSummary
from ..transforms import KINETICS_MEAN, KINETICS_STD, clip_transform
from . import listing, sample
from .dataset import KineticsClips
from .preflight import ScanReport, scan

__all__ = ["KineticsDataModule"]

log = logging.getLogger(__name__)


def _primitive_floats(xs: Iterable[float]) -> Tuple[float, ...]:
    return tuple(float(x) for x in xs)


class KineticsDataModule(RootOrSampleDataModule):
    """Kinetics-400 clips for training and evaluation (or a generated sample without a root).

    Batches are dicts ``{"video": (B, C, T, H, W) float32, "label": (B,) int64,
    "video_index": (B,) int64, "path": list[str]}``: ``T = frames`` for training, ``T =
    continual_frames`` (if set, else ``frames``) for validation/test, ``H = W = crop``.

    With ``root=None`` a small generated sample in the Kinetics layout (motion classes; see
    :mod:`cozoo.data.kinetics.sample`) is written to ``cache_dir`` (default
    ``$COZOO_CACHE/kinetics_sample/v1`` or ``~/.cache/cozoo/kinetics_sample/v1``) and read
    through the same code, with a loud warning.

    Args:
        root: dataset root (layouts in :mod:`cozoo.data.kinetics`), or None for the generated
            sample.
        frames, sampling_rate: clip of ``frames`` frames every ``sampling_rate``-th frame at 30 fps.
        short_side, crop: short side after resizing; square crop (random in training, centre in
            evaluation).
        mean, std: per-channel normalisation after scaling to [0, 1].
        batch_size, num_workers: loader settings (the same for every split).
        clips_per_video_train: random clips drawn per training video and epoch.
        continual_frames: evaluation clips get this many frames (same sampling rate) so that a
            continual model can warm up on the clip's own leading frames; the last frame repeats
            when the video is shorter.
        continual_align: ``"center"`` (the published protocol: the longer window is centred) or
            ``"end"`` (its last ``frames`` frames are exactly the protocol's centred clip, when
            the video has room for the frames before it; else the window starts at the video's
            first frame).
        cache_dir: folder of the generated sample (and of scan results).
        sample_size: ``"tiny"``, ``"small"`` or ``"medium"`` (videos per class, see
            ``sample.SAMPLE_SIZES``).
        seed: seed of the generated sample.
        train_scale: random short side range in training, relative to ``short_side``.
        hflip: horizontal-flip probability in training (keep 0 for the sample: direction is
            its class).
        scan: pre-flight scan in ``setup``: ``"decode"`` (open + decode a frame), ``"open"``, or
            ``"off"`` (missing files are still skipped).
        fps: frame rate videos are resampled to.
    """

    dataset_name = "Kinetics-400"
    input_key = "video"
    item_name = "video"
    sample_sizes = sample.SAMPLE_SIZES

    def __init__(
        self,
        root: Optional[str] = None,
        frames: int = 16,
        sampling_rate: int = 5,
        short_side: int = 224,
        crop: int = 224,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        batch_size: int = 8,
        num_workers: int = 0,
        clips_per_video_train: int = 1,
        continual_frames: Optional[int] = None,
        continual_align: str = "center",
        cache_dir: Optional[str] = None,
        sample_size: str = "small",
        seed: int = 0,
        train_scale: Sequence[float] = (1.0, 1.25),
        hflip: float = 0.0,
        scan: str = "decode",
        fps: int = 30,
    ) -> None:
        if scan not in ("decode", "open", "off"):
            raise ValueError(f"scan must be 'decode', 'open' or 'off', got {scan!r}")
        if continual_align not in ("center", "end"):
            raise ValueError(f"continual_align must be 'center' or 'end', got {continual_align!r}")
        super().__init__(
            root=root,
            cache_dir=cache_dir,
            sample_size=sample_size,
            seed=seed,
            batch_size=batch_size,
            num_workers=num_workers,
            frames=int(frames),
            sampling_rate=int(sampling_rate),
            short_side=int(short_side),
            crop=int(crop),
            mean=_primitive_floats(mean),
            std=_primitive_floats(std),
            clips_per_video_train=int(clips_per_video_train),
            continual_frames=None if continual_frames is None else int(continual_frames),
            continual_align=str(continual_align),
            train_scale=_primitive_floats(train_scale),
            hflip=float(hflip),
            scan=str(scan),
            fps=int(fps),
        )

    @classmethod
    def from_protocol(cls, protocol: Any, **kwargs: Any) -> KineticsDataModule:
        """A data module with an input protocol: ``protocol`` is a mapping or an object with
        ``frames``, ``sampling_rate``, ``short_side``, ``crop``, ``mean``, ``std`` (e.g. a
        ``Weights`` entry's ``transforms``); ``kwargs`` override or add arguments."""
        keys = ("frames", "sampling_rate", "short_side", "crop", "mean", "std")
        get = protocol.get if isinstance(protocol, dict) else lambda k: getattr(protocol, k, None)
        args = {k: get(k) for k in keys if get(k) is not None}
        return cls(**{**args, **kwargs})

    @classmethod
    def from_model(cls, name: str, **kwargs: Any) -> KineticsDataModule:
        """A data module with the published input protocol of the registered model ``name``
        (its weights' meta, ``cozoo.models.get_model_info(name).input``)."""
        from cozoo.models import get_model_info

        protocol = get_model_info(name).input
        if protocol is None or protocol.kind != "video":
            raise ValueError(f"{name} has no video input protocol (its input: {protocol!r})")
        return cls.from_protocol(protocol, **kwargs)

    # ---- hooks of RootOrSampleDataModule -------------------------------------------------------
    def ensure_sample(self) -> Path:
        """The generated Kinetics-layout sample (written on first use)."""
        h = self.hparams
        return sample.ensure_sample(h.cache_dir, h.sample_size, h.seed)

    def describe_sample(self) -> SampleInfo:
        per_class = sum(sample.SAMPLE_SIZES[self.hparams.sample_size])
        return SampleInfo(
            count=per_class * len(sample.SAMPLE_CLASSES),
            noun="videos",
            class_names=sample.SAMPLE_CLASSES,
            class_kind="motion",
            layout="Kinetics layout (mp4 + annotations/*.csv)",
            real_root_example="/path/to/kinetics400",
        )

    def has_split(self, split: str) -> bool:
        return listing.has_split(self.data_root, split)

    def list_class_names(self, root: Path) -> List[str]:
        """The classes shared by all splits (any present split lists them)."""
        split = next((s for s in listing.SPLITS if self.has_split(s)), "train")
        return listing.list_split(root, split).class_names

    def scan_split(self, split: str) -> ScanSummary:
        """The pre-flight scan of ``hparams.scan``; with ``"off"``, only the listing (missing
        files are still reported and skipped)."""
        mode = self.hparams.scan
        if mode != "off":
            cache = None
            if self.hparams.cache_dir is not None:
                cache = Path(self.hparams.cache_dir).expanduser()
            return scan(self.data_root, split, decode=mode == "decode", cache_dir=cache)
        listed = listing.list_split(self.data_root, split)
        report = ScanReport(
            str(self.data_root),
            split,
            listed.layout,
            listed.class_names,
            listed.records,
            listed.missing,
        )
        report.log_summary(log, clean_too=False)
        return report

    def build_dataset(self, split: str, report: ScanSummary) -> Dataset:
        """Clips of the readable videos: ``frames`` (training) or ``continual_frames``
        (evaluation, if set) frames each, transformed to ``(C, T, crop, crop)``."""
        h = self.hparams
        train = split == "train"
        frames = h.frames if train or h.continual_frames is None else h.continual_frames
        transform = clip_transform(
            frames=frames,
            short_side=h.short_side,
            crop=h.crop,
            mean=h.mean,
            std=h.std,
            train=train,
            train_scale=tuple(h.train_scale),
            hflip=h.hflip,
        )
        return KineticsClips(
            report.ok,
            frames=frames,
            sampling_rate=h.sampling_rate,
            transform=transform,
            train=train,
            clips_per_video=h.clips_per_video_train,
            align=h.continual_align,
            end_frames=h.frames,
            fps=h.fps,
        )
