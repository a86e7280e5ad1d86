"""The cozoo model zoo: continual video classifiers and their registry.

>>> from cozoo.models import create_model, list_models
>>> list_models("cox3d_*")
['cox3d_l', 'cox3d_m', 'cox3d_s']
>>> net = create_model("cox3d_m", pool_size=16).eval()   # logits, no softmax
"""

from ._registry import create_model, get_model_builder, get_model_weights, list_models
from .blocks import ContinualVideoNet, CoResNet
from .coi3d import CoI3D, coi3d
from .coslow import CoSlow, coslow
from .cox3d import CoX3D, cox3d_l, cox3d_m, cox3d_s

__all__ = [
    "CoI3D",
    "CoResNet",
    "CoSlow",
    "CoX3D",
    "ContinualVideoNet",
    "coi3d",
    "coslow",
    "cox3d_l",
    "cox3d_m",
    "cox3d_s",
    "create_model",
    "get_model_builder",
    "get_model_weights",
    "list_models",
]
