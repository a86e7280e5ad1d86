"""Kinetics-400 (and any Kinetics-layout root): listing, pre-flight scan, PyAV clip decoding, the
clip dataset and the ``KineticsDataModule``.

Layouts read (per split; the first that exists wins)::

    1. Kinetics annotation CSVs (the official release, cvdfoundation/ActivityNet downloads)
       root/annotations/{train,validate,test}.csv    (also val.csv, kinetics_400_<split>.csv,
                                                      or the CSVs directly in root)
           label,youtube_id,time_start,time_end,split[,is_cc]
       root/{train,val,test}/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4
           (class sub-folders optional: files are found by name anywhere under the split
            folder, also when named <youtube_id>.mp4 or .avi/.mkv/.webm)
    2. pytorchvideo / PySlowFast path lists: root/{train,val,test}.csv with lines
           <path> <integer label>        (or "<path>,<label>"; paths relative to root)
    3. Plain folders (pytorchvideo ``LabeledVideoPaths.from_directory``):
           root/{train,val,test}/<class_name>/*.mp4

Class index = position in the sorted class names (the union over the splits; 400 for
Kinetics-400). A row whose file is absent is *missing*; a file that PyAV cannot open or decode is
*unreadable*. Both are reported with their paths, counted and skipped; the pre-flight
:func:`scan` finds them up front (``python -m cozoo.data.kinetics scan ROOT --split val``), and a
video that still fails later, while loading, is reported once and replaced by the next readable
video instead of stopping the run.

Clips follow the single-clip, centre-crop Kinetics-400 evaluation protocol of continual 3D CNNs
(Hedegaard & Iosifidis, ECCV 2022): decode, resample to 30 fps (nearest frame in time), a window
of ``frames × sampling_rate`` frames (random for training, centred on the video middle for
evaluation; starting at 0 and repeating the last frame when the window is longer than the
video), ``frames`` indices uniformly in the window, then the transforms of
:mod:`cozoo.data.transforms`.
"""

# Modules, along the seams of the data path:
#   listing     the three layouts -> VideoRecord lists (finds missing files)
#   preflight   probe_video, scan, ScanReport (finds unreadable files; cached between runs)
#   decode      read_frames: PyAV decoding resampled to 30 fps
#   dataset     clip_indices, end_aligned_indices, KineticsClips
#   sample      the generated Kinetics-layout sample (rendering, mp4 encoding, cache)
#   datamodule  KineticsDataModule (on cozoo.data._base.RootOrSampleDataModule)
#   cli         python -m cozoo.data.kinetics scan | sample

from __future__ import annotations

import importlib
from typing import Any

# Imported lazily: the command line and the generated sample need neither Lightning nor
# torchvision.
_EXPORTS = {
    "DecodeError": "decode",
    "KineticsClips": "dataset",
    "KineticsDataModule": "datamodule",
    "SPLITS": "listing",
    "ScanReport": "preflight",
    "VIDEO_EXTENSIONS": "listing",
    "VideoRecord": "listing",
    "clip_indices": "dataset",
    "end_aligned_indices": "dataset",
    "list_split": "listing",
    "main": "cli",
    "probe_video": "preflight",
    "read_frames": "decode",
    "scan": "preflight",
}

__all__ = [
    "SPLITS",
    "DecodeError",
    "KineticsClips",
    "KineticsDataModule",
    "ScanReport",
    "VideoRecord",
    "clip_indices",
    "end_aligned_indices",
    "list_split",
    "probe_video",
    "read_frames",
    "scan",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))
