"""Names of cozoo 0.1's ``cozoo.models.weights``, kept for code written against it.

The generic weights API lives in :mod:`cozoo.models` (``Weights``, ``WeightsEnum``,
``load_weights``...), each model's weights enum beside its builders (``cozoo.models.video.cox3d``
...). New code imports from there.
"""

from . import (
    ChecksumError,
    CoI3D_Weights,
    CoSlow_Weights,
    CoX3D_L_Weights,
    CoX3D_M_Weights,
    CoX3D_S_Weights,
    StateDictMismatchError,
    UnpinnedChecksumWarning,
    UnsafeCheckpointError,
    Weights,
    WeightsEnum,
    WeightsError,
    load_checkpoint,
    load_weights,
)
from ._meta import VideoInput as InputProtocol

__all__ = [
    "ChecksumError",
    "CoI3D_Weights",
    "CoSlow_Weights",
    "CoX3D_L_Weights",
    "CoX3D_M_Weights",
    "CoX3D_S_Weights",
    "InputProtocol",
    "StateDictMismatchError",
    "UnpinnedChecksumWarning",
    "UnsafeCheckpointError",
    "Weights",
    "WeightsEnum",
    "WeightsError",
    "load_checkpoint",
    "load_weights",
]
