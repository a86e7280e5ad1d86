"""The video family: continual 3D CNNs for Kinetics-400 clips ``(B, 3, T, H, W)``.

- :mod:`.cox3d`: CoX3D-S/M/L and their weights (``CoX3D_{S,M,L}_Weights``);
- :mod:`.coslow`: CoSlow (Slow-8×8-R50), :mod:`.coi3d`: CoI3D (I3D-R50);
- :mod:`.blocks`: the units they are built of, :mod:`.resnet`: the ResNet-50-3D they share,
  :mod:`.net`: their base class, :mod:`.checkpoints`: the source code bases' key layouts.
"""

from .blocks import TEMPORAL_FILLS
from .coi3d import CoI3D, CoI3D_Weights, coi3d
from .coslow import CoSlow, CoSlow_Weights, coslow
from .cox3d import (
    CoX3D,
    CoX3D_L_Weights,
    CoX3D_M_Weights,
    CoX3D_S_Weights,
    cox3d_l,
    cox3d_m,
    cox3d_s,
)
from .net import ContinualVideoNet
from .resnet import CoResNet

__all__ = [
    "TEMPORAL_FILLS",
    "CoI3D",
    "CoI3D_Weights",
    "CoResNet",
    "CoSlow",
    "CoSlow_Weights",
    "CoX3D",
    "CoX3D_L_Weights",
    "CoX3D_M_Weights",
    "CoX3D_S_Weights",
    "ContinualVideoNet",
    "coi3d",
    "coslow",
    "cox3d_l",
    "cox3d_m",
    "cox3d_s",
]
