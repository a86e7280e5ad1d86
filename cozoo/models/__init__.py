"""The cozoo model zoo: continual networks per family, their published weights, a registry.

>>> from cozoo.models import create_model, list_models
>>> list_models("cox3d_*")
['cox3d_l', 'cox3d_m', 'cox3d_s']
>>> net = create_model("cox3d_m", pool_size=16).eval()   # logits, no softmax

Layout: a generic core (``_registry``: ``register_model``/``list_models``/``create_model``;
``_weights``: ``Weights``/``WeightsEnum``/``build_model``/``load_weights``; ``_meta``: the typed
facts of a weights entry; ``_hub``: download, cache, sha256, restricted reading; ``_keys``:
unwrapping and renaming checkpoint keys) and one sub-package per family (``video``), each model
file holding its builders and its weights enum. Importing this package imports every module of
the family packages, so a model registers itself by being defined there.
"""

import importlib
import pkgutil

from ._errors import (
    ChecksumError,
    StateDictMismatchError,
    UnpinnedChecksumWarning,
    UnsafeCheckpointError,
    WeightsError,
)
from ._hub import cache_dir, cache_path, download, fetch, read_checkpoint, sha256sum
from ._keys import KeyRules, load_state_dict_strict, state_dict_diff, unwrap
from ._meta import (
    KINETICS_MEAN,
    KINETICS_STD,
    Baseline,
    Compute,
    FeatureInput,
    InputSpec,
    Result,
    SkeletonInput,
    Variant,
    VideoInput,
    WeightsMeta,
    variant_label,
)
from ._registry import (
    ModelInfo,
    create_model,
    get_model_builder,
    get_model_info,
    get_model_weights,
    get_weight,
    list_models,
    register_model,
)
from ._weights import Weights, WeightsEnum, build_model, load_checkpoint, load_weights


def _import_families() -> None:
    """Import every public module of every family sub-package (their builders register)."""
    for family in pkgutil.iter_modules(__path__, __name__ + "."):
        if not family.ispkg:
            continue
        package = importlib.import_module(family.name)
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(module.name)


_import_families()

from .video import (  # noqa: E402 - after the families are imported, for the re-exports
    CoI3D,
    CoI3D_Weights,
    ContinualVideoNet,
    CoResNet,
    CoSlow,
    CoSlow_Weights,
    CoX3D,
    CoX3D_L_Weights,
    CoX3D_M_Weights,
    CoX3D_S_Weights,
    coi3d,
    coslow,
    cox3d_l,
    cox3d_m,
    cox3d_s,
)

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "Baseline",
    "ChecksumError",
    "CoI3D",
    "CoI3D_Weights",
    "CoResNet",
    "CoSlow",
    "CoSlow_Weights",
    "CoX3D",
    "CoX3D_L_Weights",
    "CoX3D_M_Weights",
    "CoX3D_S_Weights",
    "Compute",
    "ContinualVideoNet",
    "FeatureInput",
    "InputSpec",
    "KeyRules",
    "ModelInfo",
    "Result",
    "SkeletonInput",
    "StateDictMismatchError",
    "UnpinnedChecksumWarning",
    "UnsafeCheckpointError",
    "Variant",
    "VideoInput",
    "Weights",
    "WeightsEnum",
    "WeightsError",
    "WeightsMeta",
    "build_model",
    "cache_dir",
    "cache_path",
    "coi3d",
    "coslow",
    "cox3d_l",
    "cox3d_m",
    "cox3d_s",
    "create_model",
    "download",
    "fetch",
    "get_model_builder",
    "get_model_info",
    "get_model_weights",
    "get_weight",
    "list_models",
    "load_checkpoint",
    "load_state_dict_strict",
    "load_weights",
    "read_checkpoint",
    "register_model",
    "sha256sum",
    "state_dict_diff",
    "unwrap",
    "variant_label",
]
