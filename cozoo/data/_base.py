"""The data module every dataset family of cozoo builds on: a real root, or a generated sample in
the same on-disk format, written to the cache and read by the same code.

A family (Kinetics videos, NTU RGB+D skeletons, THUMOS14 features, ...) subclasses
:class:`RootOrSampleDataModule`, names itself and its model input with class attributes, and
implements six hooks: where its generated sample comes from (:meth:`~RootOrSampleDataModule.
ensure_sample`, :meth:`~RootOrSampleDataModule.describe_sample`), which splits and classes a
root has (:meth:`~RootOrSampleDataModule.has_split`, :meth:`~RootOrSampleDataModule.
list_class_names`), the pre-flight scan of a split (:meth:`~RootOrSampleDataModule.scan_split`)
and the dataset of a split (:meth:`~RootOrSampleDataModule.build_dataset`). The base class does
the rest the same way for every family: hyperparameters, the loud banner when the generated
sample is used, ``prepare_data``/``setup``, the loaders and the ``skipped`` counts.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from ._scan import ScanSummary

__all__ = ["STAGE_SPLITS", "RootOrSampleDataModule", "SampleInfo"]

#: The splits that ``setup(stage)`` builds. Every family names its splits train / val / test.
STAGE_SPLITS: Dict[str, Tuple[str, ...]] = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
}
#: The stage set up when a loader is asked for a split that is not built yet.
_LOADER_STAGE: Dict[str, str] = {"train": "fit", "val": "validate", "test": "test"}
_BANNER_BAR = "=" * 78


@dataclass(frozen=True)
class SampleInfo:
    """What a family's generated sample holds, as the banner tells it.

    Example (Kinetics): ``SampleInfo(42, "videos", ("growing", ...), "motion", "Kinetics layout
    (mp4 + annotations/*.csv)", "/path/to/kinetics400")``.
    """

    #: Items in all splits together (videos, skeleton sequences, feature files, ...).
    count: int
    #: Plural noun of an item.
    noun: str
    class_names: Tuple[str, ...]
    #: What the classes are, as an adjective: "6 motion classes".
    class_kind: str
    #: The on-disk format the sample is written in.
    layout: str
    #: A placeholder path of the real dataset, for "Pass data.root=<path>".
    real_root_example: str


class RootOrSampleDataModule(LightningDataModule, abc.ABC):
    """A dataset read from its real on-disk format at ``root``, or, with ``root=None``, from a
    small generated sample in that same format, written once into the cache and read through
    the same code (announced by a loud WARNING banner).

    Batches are dicts holding the model input under :attr:`input_key` (``(B, C, T, H, W)``
    float32 clips for ``"video"``), ``"label"`` ``(B,)`` int64, and whatever else the family's
    dataset yields.

    Every split is scanned before its dataset is built (:meth:`scan_split`): missing and
    unreadable files are reported by path, counted (:attr:`skipped`) and skipped, never fatal;
    only a split without a single readable item is an error.

    Args:
        root: the dataset root, or None for the generated sample.
        cache_dir: folder of the generated sample (and of cached scan results); the family
            decides the layout below it and the default.
        sample_size: name of a size of the generated sample (a key of :attr:`sample_sizes`).
        seed: seed of the generated sample (the same seed gives the same bytes).
        batch_size, num_workers: loader settings, the same for every split (workers persist
            between epochs).
        **family_hparams: the family's own hyperparameters, as primitives (Hydra hands over
            ``ListConfig``/``DictConfig``; checkpoints must load with ``weights_only=True``).
    """

    #: Name of the real dataset, in the banner ("Kinetics-400").
    dataset_name: ClassVar[str] = "the real dataset"
    #: Batch key of the model input: ``"video"``, ``"skeleton"``, ``"features"``, ...
    input_key: ClassVar[str] = "input"
    #: Singular noun of an item, in errors ("no readable video in ...").
    item_name: ClassVar[str] = "item"
    #: Sizes of the generated sample: name -> the family's description of it (e.g. items per
    #: class and split).
    sample_sizes: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        *,
        root: Optional[str],
        cache_dir: Optional[str],
        sample_size: str,
        seed: int,
        batch_size: int,
        num_workers: int,
        **family_hparams: Any,
    ) -> None:
        super().__init__()
        if root is None and sample_size not in self.sample_sizes:
            raise ValueError(f"sample_size must be one of {sorted(self.sample_sizes)}")
        self.save_hyperparameters(
            {
                "root": None if root is None else str(root),
                "cache_dir": None if cache_dir is None else str(cache_dir),
                "sample_size": str(sample_size),
                "seed": int(seed),
                "batch_size": int(batch_size),
                "num_workers": int(num_workers),
                **family_hparams,
            }
        )
        self._root: Optional[Path] = None
        self._class_names: Optional[List[str]] = None
        self.datasets: Dict[str, Dataset] = {}
        self.scan_reports: Dict[str, ScanSummary] = {}
        # the family's own logger (e.g. cozoo.data.kinetics.datamodule): configuring the
        # family's logging configures its banner too
        self._family_log = logging.getLogger(type(self).__module__)

    # ---- hooks of a dataset family -------------------------------------------------------------
    @abc.abstractmethod
    def ensure_sample(self) -> Path:
        """Write the generated sample of ``hparams.sample_size`` and ``hparams.seed`` into the
        cache (``hparams.cache_dir``) unless it is already there, atomically (see
        :func:`cozoo.data._cache.build_atomically`); return its root."""

    @abc.abstractmethod
    def describe_sample(self) -> SampleInfo:
        """What the generated sample of ``hparams.sample_size`` holds (without writing it)."""

    @abc.abstractmethod
    def has_split(self, split: str) -> bool:
        """Whether :attr:`data_root` holds ``split`` (``"train"``, ``"val"`` or ``"test"``)."""

    @abc.abstractmethod
    def list_class_names(self, root: Path) -> List[str]:
        """The class names of the real dataset at ``root``; the class index is the position."""

    @abc.abstractmethod
    def scan_split(self, split: str) -> ScanSummary:
        """The pre-flight scan of ``split`` under :attr:`data_root`: the readable items (its
        ``ok``) and the missing and unreadable files, logged by path (see
        :mod:`cozoo.data._scan`)."""

    @abc.abstractmethod
    def build_dataset(self, split: str, report: ScanSummary) -> Dataset:
        """The dataset of ``split`` over the readable items of its scan ``report``. Items are
        dicts with the model input under :attr:`input_key` and ``"label"``. A dataset may keep
        the items that fail while loading in a ``failed`` mapping ``{path: reason}``; they are
        counted in :attr:`skipped`."""

    # ---- where the data is ---------------------------------------------------------------------
    @property
    def is_generated_sample(self) -> bool:
        """True when no ``root`` was given and the generated sample is used."""
        return self.hparams.root is None

    @property
    def data_root(self) -> Path:
        """The dataset root in use (writes the generated sample first when needed)."""
        if self._root is None:
            if self.is_generated_sample:
                root = self.ensure_sample()
                self._log_sample_banner(root)
                self._root = root
            else:
                self._root = Path(self.hparams.root).expanduser().resolve()
        return self._root

    def _log_sample_banner(self, root: Path) -> None:
        info = self.describe_sample()
        self._family_log.warning(
            "\n%s\n  NO data.root GIVEN: USING A GENERATED SAMPLE, NOT %s\n"
            "  %d synthetic %s, %d %s classes (%s), written in the\n"
            "  %s at\n    %s\n"
            "  Pass data.root=%s to use the real dataset.\n%s",
            _BANNER_BAR,
            self.dataset_name.upper(),
            info.count,
            info.noun,
            len(info.class_names),
            info.class_kind,
            ", ".join(info.class_names),
            info.layout,
            root,
            info.real_root_example,
            _BANNER_BAR,
        )

    @property
    def class_names(self) -> List[str]:
        """Sorted class names; the class index is the position in this list."""
        if self._class_names is None:
            if self.is_generated_sample:
                self._class_names = list(self.describe_sample().class_names)
            else:
                self._class_names = self.list_class_names(self.data_root)
        return self._class_names

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def skipped(self) -> Dict[str, Dict[str, int]]:
        """Per split: items skipped as ``missing``/``unreadable`` by the scan and ``failed``
        while loading (in this process)."""
        out: Dict[str, Dict[str, int]] = {}
        for split in sorted(set(self.scan_reports) | set(self.datasets)):
            report = self.scan_reports.get(split)
            dataset = self.datasets.get(split)
            out[split] = {
                "missing": len(report.missing) if report else 0,
                "unreadable": len(report.unreadable) if report else 0,
                "failed": len(getattr(dataset, "failed", ())) if dataset is not None else 0,
            }
        return out

    # ---- Lightning hooks -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Write the generated sample (rank 0) when no ``root`` is given."""
        _ = self.data_root

    def scan_report(self, split: str) -> ScanSummary:
        """The scan of ``split`` (run once, then kept in :attr:`scan_reports`); its class names
        become :attr:`class_names`. Raises ``FileNotFoundError`` when no item is readable."""
        if split not in self.scan_reports:
            report = self.scan_split(split)
            if not report.ok:
                raise FileNotFoundError(
                    f"no readable {self.item_name} in {self.data_root} [{split}]"
                )
            self.scan_reports[split] = report
            self._class_names = report.class_names
        return self.scan_reports[split]

    def setup(self, stage: Optional[str] = None) -> None:
        """Scan and build the datasets of ``stage`` (``fit``: train + val; ``validate``: val;
        ``test``/``predict``: test; ``None``: every split present)."""
        splits: Sequence[str] = STAGE_SPLITS.get(
            stage or "", tuple(s for s in ("train", "val", "test") if self.has_split(s))
        )
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = self.build_dataset(split, self.scan_report(split))

    def dataloader(self, split: str, shuffle: bool) -> DataLoader:
        """The loader of ``split`` (its stage is set up first if needed)."""
        if split not in self.datasets:
            self.setup(_LOADER_STAGE[split])
        workers = self.hparams.num_workers
        return DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self.dataloader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.dataloader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.dataloader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.dataloader("test", shuffle=False)
