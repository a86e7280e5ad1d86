"""Datasets of cozoo: one LightningDataModule per dataset, reading its real on-disk format, with
a small generated sample in that same format when no root is given.

- :mod:`cozoo.data.kinetics`: Kinetics-400 (``KineticsDataModule``, the pre-flight ``scan``).
- :mod:`cozoo.data.samples`: the generated Kinetics-layout sample (motion classes).
- :mod:`cozoo.data.transforms`: per-model clip transforms (``clip_transform``, ``PROTOCOLS``).

Names are imported lazily, so that ``python -m cozoo.data.kinetics`` runs its module only once.
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
    "SAMPLE_CLASSES": "samples",
    "SAMPLE_SIZES": "samples",
    "ensure_sample": "samples",
    "PROTOCOLS": "transforms",
    "clip_transform": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(list(globals()) + __all__)
