"""Datasets of cozoo: one LightningDataModule per dataset, reading its real on-disk format, with
a small generated sample in that same format when no root is given.

- :mod:`cozoo.data.kinetics`: Kinetics-400 (``KineticsDataModule``, the pre-flight ``scan``,
  the generated Kinetics-layout sample of motion classes in :mod:`cozoo.data.kinetics.sample`).
- :mod:`cozoo.data.ntu`: NTU RGB+D 60 / 120 skeletons (``NTUDataModule``; the 2s-AGCN files, pyskl
  annotation pickles, raw ``.skeleton`` files via ``python -m cozoo.data.ntu prepare``; a
  generated sample of motion classes in the 2s-AGCN layout).
- :mod:`cozoo.data.thumos`: THUMOS14 per-step video features for online action detection
  (``ThumosDataModule``; the OadTR/CoOadTR pickles and the LSTR ``.npy`` folders; windows of 64
  steps, ``evaluated_steps``; a generated sample of learnable feature videos in the pickle layout).
- :mod:`cozoo.data.transforms`: per-model clip transforms (``clip_transform``).
- What every dataset family builds on: :mod:`cozoo.data._base` (``RootOrSampleDataModule``:
  real root or generated sample, banner, loaders, skipped counts), :mod:`cozoo.data._scan` (the
  pre-flight scan report) and :mod:`cozoo.data._cache` (the cache folder, atomic sample writing).
- :mod:`cozoo.data.samples`: the former name of :mod:`cozoo.data.kinetics.sample`.

Names are imported lazily: importing :mod:`cozoo.data` loads neither Lightning nor PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DecodeError": "kinetics",
    "KineticsClips": "kinetics",
    "KineticsDataModule": "kinetics",
    "ScanReport": "kinetics",
    "VideoRecord": "kinetics",
    "list_split": "kinetics",
    "probe_video": "kinetics",
    "read_frames": "kinetics",
    "scan": "kinetics",
    "SAMPLE_CLASSES": "kinetics.sample",
    "SAMPLE_SIZES": "kinetics.sample",
    "ensure_sample": "kinetics.sample",
    "clip_transform": "transforms",
    "RootOrSampleDataModule": "_base",
    "SampleInfo": "_base",
    "FileScanReport": "_scan",
    "NTUDataModule": "ntu",
    "ThumosDataModule": "thumos",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
