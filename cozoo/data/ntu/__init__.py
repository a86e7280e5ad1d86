"""NTU RGB+D 60 and 120 skeleton sequences (Shahroudy et al., CVPR 2016; Liu et al., TPAMI
2019), prepared as 2s-AGCN (Shi et al., CVPR 2019) prepares them for the skeleton networks.

Three on-disk layouts give the same items ``{"skeleton": (C, 300, 25, 2) float32, "label",
"name", "index"}``::

    1. agcn_npy   the 2s-AGCN files the published weights were evaluated on
           <root>/ntu60/{xsub,xview}/  <root>/ntu120/{xsub,xset}/   (or <root>/<split>/, <root>)
               {train,val}_data_joint.npy  (N, 3, 300, 25, 2) float32, memory-mapped
               {train,val}_label.pkl       (names, 0-based labels)
               {train,val}_data_{bone,joint_motion,bone_motion,joint_bone}.npy   optional
    2. pyskl      the pyskl / mmaction2 annotation pickle (ntu60_3danno.pkl, ntu120_3danno.pkl),
                  camera-space keypoints converted on the fly
    3. raw        NTU's .skeleton files, converted to 1 by
           python -m cozoo.data.ntu prepare --raw <dir> --out <root> --benchmark ntu60 --split xsub

Modalities (``modality=``): joint, bone, joint_motion, bone_motion, joint_bone (6 channels),
read from their files when present, else computed from the joints. ``val`` and ``test`` are both
the published ``val`` set. Without a root, :class:`NTUDataModule` uses a generated sample of 6
motion classes in layout 1 (:mod:`cozoo.data.ntu.sample`), with a loud warning.
"""

# Modules, along the seams of the data path:
#   protocol       sample names, split rules, class names, missing-skeleton lists
#   skeleton_file  the .skeleton parser (and writer)
#   normalize      the 2s-AGCN pre-normalisation (body selection, fill, centre, rotations)
#   features       bone / motion modalities
#   layouts        the agcn_npy and pyskl readers, layout detection, the pre-flight scan
#   dataset        NTUSkeletons (torch Dataset)
#   prepare        .skeleton files -> agcn_npy
#   sample         the generated sample (agcn_npy; also as pyskl pickle / .skeleton files)
#   datamodule     NTUDataModule (on cozoo.data._base.RootOrSampleDataModule)
#   cli            python -m cozoo.data.ntu prepare | scan | sample

from __future__ import annotations

import importlib
from typing import Any

# Imported lazily: the command line and the generated sample need neither Lightning nor torch.
_EXPORTS = {
    "MODALITIES": "features",
    "AgcnNpySplit": "layouts",
    "NTUDataModule": "datamodule",
    "NTUFormatError": "layouts",
    "NTUScanReport": "layouts",
    "NTUSkeletons": "dataset",
    "PysklSplit": "layouts",
    "SkeletonFileError": "skeleton_file",
    "class_names": "protocol",
    "find_source": "layouts",
    "main": "cli",
    "normalize_agcn": "normalize",
    "parse_name": "protocol",
    "prepare": "prepare",
    "read_skeleton": "skeleton_file",
    "scan": "layouts",
    "to_modality": "features",
}

__all__ = sorted(k for k in _EXPORTS if k != "main")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))
