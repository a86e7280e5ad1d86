"""THUMOS14 (Jiang et al., 2014) per-step video features for online action detection, as OadTR
(Wang et al., ICCV 2021) and CoOadTR (Hedegaard et al., 2022) use them.

Two on-disk layouts give the same videos (features ``(L, C)``: rgb, flow[, audio] concatenated;
targets ``(L, 22)``: background, 20 actions, Ambiguous)::

    1. oadtr_pickle  thumos_{kin,anet}[_plus_audio]_{val,test}.pickle
                     + thumos_{val,test}_anno.pickle (or upstream OadTR's feature pickles
                     thumos_all_feature_{val,test}_{V3,tsn_v2}.pickle)
    2. lstr_npy      rgb_kinetics_resnet50/ flow_kinetics_bninception/ (or the ANet folders)
                     target_perframe/  -- one .npy per video

Windows of 64 steps, stride 1, labelled by the last step; the labelled steps are 63 .. L - 10,
Ambiguous ones dropped (:func:`evaluated_steps`). Without a root, :class:`ThumosDataModule`
uses a generated sample of learnable feature videos in layout 1 (:mod:`cozoo.data.thumos.sample`),
with a loud warning. ``python -m cozoo.data.thumos scan ROOT`` checks a root.
"""

# Modules, along the seams of the data path:
#   protocol    class names, split lists, the window rule (evaluated_steps), train offsets
#   layouts     the oadtr_pickle and lstr_npy readers, layout detection, the pre-flight scan
#   dataset     ThumosWindows (torch Dataset of windows), ThumosVideo (a whole video)
#   sample      the generated sample (oadtr_pickle; also written as lstr_npy)
#   datamodule  ThumosDataModule (on cozoo.data._base.RootOrSampleDataModule)
#   cli         python -m cozoo.data.thumos scan | sample

from __future__ import annotations

import importlib
from typing import Any

# Imported lazily: the command line and the generated sample need no Lightning.
_EXPORTS = {
    "AMBIGUOUS": "protocol",
    "BACKGROUND": "protocol",
    "CLASS_NAMES": "protocol",
    "FUTURE": "protocol",
    "NUM_CLASSES": "protocol",
    "WINDOW": "protocol",
    "evaluated_steps": "protocol",
    "test_videos": "protocol",
    "train_videos": "protocol",
    "window_starts": "protocol",
    "LstrNpySplit": "layouts",
    "OadtrPickleSplit": "layouts",
    "ThumosFormatError": "layouts",
    "ThumosScanReport": "layouts",
    "find_source": "layouts",
    "scan": "layouts",
    "ThumosVideo": "dataset",
    "ThumosWindows": "dataset",
    "ThumosDataModule": "datamodule",
    "main": "cli",
}

__all__ = sorted(k for k in _EXPORTS if k != "main")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))
