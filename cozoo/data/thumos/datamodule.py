"""``ThumosDataModule``: THUMOS14 feature videos (or the generated sample) as windows for
training and clip-mode evaluation, and as whole videos for streaming evaluation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from torch.utils.data import DataLoader, Dataset

from .._base import RootOrSampleDataModule, SampleInfo
from .._scan import ScanSummary
from . import sample
from .dataset import ThumosVideo, ThumosWindows, video
from .layouts import (
    LAYOUTS,
    Source,
    check_features,
    class_names_at,
    feature_dims,
    find_source,
    has_fsplit,
    open_split,
    scan,
)
from .protocol import CLASS_NAMES, FUTURE, WINDOW, file_split, train_offsets

__all__ = ["ThumosDataModule"]

log = logging.getLogger(__name__)


class ThumosDataModule(RootOrSampleDataModule):
    """THUMOS14 (Jiang et al., 2014) per-step video features for online action detection, as
    OadTR (Wang et al., ICCV 2021) and CoOadTR (Hedegaard et al., 2022) train and evaluate on
    them, or a generated sample without a root.

    Splits: ``train`` = the THUMOS14 validation videos (200), windows from a random offset per
    video (drawn once, from ``seed``); ``val`` and ``test`` = the test videos (213), all windows.
    Window batches are dicts ``{"features": (B, C, window) float32 (time last), "target": (B,
    22) float32 one-hot, "label": (B,) int64, "future": (B, future, 22) float32, "video":
    list[str], "step": (B,) int64 (the window's last step)}``; ``C`` = :attr:`feature_dim`
    (rgb, flow[, audio] concatenated). :meth:`videos` yields whole videos (:class:`ThumosVideo`)
    for streaming evaluation.

    Roots (see :mod:`cozoo.data.thumos.layouts`): the OadTR feature and annotation pickles
    (``oadtr_pickle``) or the LSTR ``.npy`` folders (``lstr_npy``), in ``<root>``,
    ``<root>/data`` or ``<root>/THUMOS``. With ``root=None`` a generated sample of feature
    videos in the pickle layout (:mod:`cozoo.data.thumos.sample`) is written to
    ``<cache_dir>/thumos/`` (default ``$COZOO_CACHE`` or ``~/.cache/cozoo``) and read through the
    same code, with a loud warning.

    Args:
        root: dataset root, or None for the generated sample.
        layout: ``"auto"`` (detected), ``"oadtr_pickle"`` or ``"lstr_npy"``.
        features: ``"kinetics"`` or ``"anet"`` (which feature files are read).
        audio: append the audio features (pickle layout only: ``*_plus_audio_*.pickle``).
        window: steps per window (64). future: steps after a window given as ``future`` (8);
            both also set which steps label a window (``evaluated_steps``).
        batch_size, num_workers: loader settings (the same for every split).
        cache_dir: folder of the generated sample.
        sample_size: ``"tiny"``, ``"small"`` or ``"medium"`` (``sample.SAMPLE_SIZES``).
        seed: seed of the generated sample and of the train offsets.
    """

    dataset_name = "THUMOS14"
    input_key = "features"
    item_name = "video"
    sample_sizes = sample.SAMPLE_SIZES

    def __init__(
        self,
        root: Optional[str] = None,
        layout: str = "auto",
        features: str = "kinetics",
        audio: bool = False,
        window: int = WINDOW,
        future: int = FUTURE,
        batch_size: int = 128,
        num_workers: int = 0,
        cache_dir: Optional[str] = None,
        sample_size: str = "small",
        seed: int = 0,
    ) -> None:
        check_features(features)
        if layout not in ("auto",) + LAYOUTS:
            raise ValueError(f"layout must be 'auto' or one of {LAYOUTS}, got {layout!r}")
        if int(window) < 1 or int(future) < 0:
            raise ValueError(f"window must be >= 1 and future >= 0, got {window}, {future}")
        super().__init__(
            root=root,
            cache_dir=cache_dir,
            sample_size=sample_size,
            seed=seed,
            batch_size=batch_size,
            num_workers=num_workers,
            layout=str(layout),
            features=str(features),
            audio=bool(audio),
            window=int(window),
            future=int(future),
        )
        self._source: Optional[Tuple[str, Path]] = None
        self._splits: Dict[str, Source] = {}

    # ---- hooks of RootOrSampleDataModule -------------------------------------------------------
    def ensure_sample(self) -> Path:
        """The generated sample (written on first use)."""
        h = self.hparams
        return sample.ensure_sample(h.cache_dir, h.sample_size, h.seed, h.features, h.audio)

    def describe_sample(self) -> SampleInfo:
        spec = sample.SAMPLE_SIZES[self.hparams.sample_size]
        actions = ", ".join(CLASS_NAMES[c] for c in sample.SAMPLE_ACTIONS)
        return SampleInfo(
            count=spec.train + spec.test,
            noun=f"feature videos (actions {actions} as feature patterns)",
            class_names=CLASS_NAMES,
            class_kind="THUMOS14",
            layout="OadTR THUMOS14 layout (feature + annotation pickles)",
            real_root_example="/path/to/thumos (holding thumos_kin_val.pickle, ...)",
        )

    @property
    def source(self) -> Tuple[str, Path]:
        """``(layout, folder)`` of the data in use."""
        if self._source is None:
            layout = "oadtr_pickle" if self.is_generated_sample else self.hparams.layout
            self._source = find_source(self.data_root, layout)
        return self._source

    def split_source(self, split: str) -> Source:
        """The reader of ``split`` (``val`` and ``test`` share one), opened once."""
        fsplit = file_split(split)
        if fsplit not in self._splits:
            layout, folder = self.source
            h = self.hparams
            self._splits[fsplit] = open_split(layout, folder, fsplit, h.features, h.audio)
        return self._splits[fsplit]

    def has_split(self, split: str) -> bool:
        layout, folder = self.source
        return has_fsplit(layout, folder, file_split(split))

    def list_class_names(self, root: Path) -> List[str]:
        return class_names_at(*self.source)

    def scan_split(self, split: str) -> ScanSummary:
        """Every listed video of ``split`` checked; missing and unreadable ones reported by path
        and skipped."""
        h = self.hparams
        return scan(
            self.data_root,
            split,
            layout=self.source[0],
            features=h.features,
            audio=h.audio,
            source=self.split_source(split),
        )

    def build_dataset(self, split: str, report: ScanSummary) -> Dataset:
        """The windows of the readable videos of the scan (train: from the random offsets)."""
        source = report.source  # type: ignore[attr-defined]
        h = self.hparams
        offsets = None
        if split == "train":
            offsets = dict(zip(source.listed, train_offsets(source.listed, h.seed, h.window)))
        return ThumosWindows(source, report.ok, offsets, h.window, h.future)

    def train_dataloader(self) -> DataLoader:
        """Shuffled train windows; the last incomplete batch is dropped, as OadTR drops it
        (kept when the split has fewer windows than one batch)."""
        loader = self.dataloader("train", shuffle=True)
        dataset, workers = loader.dataset, self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=len(dataset) >= self.hparams.batch_size,  # type: ignore[arg-type]
        )

    # ---- the contract of the detection task ----------------------------------------------------
    @property
    def feature_dim(self) -> int:
        """Channels ``C`` of a feature step: 3072 (ANet) / 4096 (Kinetics) OadTR features, +4096
        with audio; a root's widths are read from its files (LSTR's Kinetics features: 3072)."""
        if self.is_generated_sample:
            return sum(feature_dims(self.hparams.features, self.hparams.audio))
        for split in ("test", "train"):
            if self.has_split(split):
                source = self.split_source(split)
                if len(source):
                    return source.feature_dim
        raise FileNotFoundError(f"no readable {self.item_name} in {self.data_root}")

    def videos(self, split: str = "test") -> Iterator[ThumosVideo]:
        """The readable videos of ``split`` one at a time, whole: ``ThumosVideo(name, features
        (C, L) float32, targets (L, 22) float32)``."""
        report = self.scan_report(split)
        source = report.source  # type: ignore[attr-defined]
        for i in report.ok:
            yield video(source, i)
