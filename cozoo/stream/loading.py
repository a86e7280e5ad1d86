"""The model of a stream and its input protocol: which network, which weights, how a raw frame
becomes a step, and what the classes are called.

``weights=`` takes what ``create_model`` takes, plus ``null``: then the newest
``<runs_root>/<model>/*/checkpoints/last.ckpt`` written by ``python -m cozoo.train`` is used when
one exists (the embedded default: ``recipe=cox3d_m`` runs go to ``runs/cox3d_m/``), else random
weights, with a loud warning. The protocol (frame rate, sampling rate, resize, crop, normalisation
of a video model; joints, persons, modality of a skeleton model) comes from

- a run checkpoint: the data module's saved hyper-parameters (what the run trained on);
- a weights entry (``DEFAULT``, a member name): its ``meta.input``;
- random weights: the settings ``cozoo.train recipe=<model>`` uses on the generated sample
  (``recipes/sample/<dataset>.yaml`` and the recipe's ``sample`` block: the sample's classes),
  else (no such recipe) the ``DEFAULT`` entry's meta.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from cozoo.models import (
    FeatureInput,
    SkeletonInput,
    VideoInput,
    create_model,
    get_model_weights,
)

__all__ = [
    "StreamModel",
    "load_stream_model",
    "newest_run_checkpoint",
    "step_transform",
    "video_step",
]


@dataclass
class StreamModel:
    """A continual network ready to stream: ``protocol`` (a ``VideoInput``, a
    ``SkeletonInput`` or None for a generic ``(B, ...)`` step), ``class_names`` (one per
    output), and ``weights`` saying what was loaded."""

    model: nn.Module
    name: str
    weights: str
    protocol: Any = None
    class_names: Optional[List[str]] = None
    random: bool = False

    def label(self, k: int) -> str:
        names = self.class_names
        return names[k] if names is not None and k < len(names) else f"class {k}"


def newest_run_checkpoint(runs_root: str, model: str) -> Optional[Path]:
    """The newest ``<runs_root>/<model>/*/checkpoints/last.ckpt`` (by modification time)."""
    found = glob.glob(os.path.join(runs_root, model, "*", "checkpoints", "last.ckpt"))
    return Path(max(found, key=os.path.getmtime)) if found else None


def _package_yaml(rel: str) -> Dict[str, Any]:
    from omegaconf import OmegaConf

    import cozoo.recipes

    path = Path(cozoo.recipes.__file__).parent / rel
    return OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else {}  # type: ignore


def _sample_group(recipe: Mapping[str, Any]) -> str:
    """The ``sample`` group a recipe composes (``override /sample: ntu``), else kinetics."""
    for entry in recipe.get("defaults") or []:
        if isinstance(entry, Mapping):
            for key, value in entry.items():
                if str(key).split()[-1].lstrip("/") == "sample":
                    return str(value)
    return "kinetics"


def sample_protocol(name: str, default: Any = None) -> Tuple[Any, Dict[str, Any], List[str]]:
    """The protocol ``cozoo.train recipe=<name>`` uses on the generated sample, the builder
    kwargs it sets there (``pool_size``, ``num_classes``...) and the sample's class names.
    ``default``: the model's published protocol (the skeleton sample keeps its joints)."""
    recipe = _package_yaml(f"recipe/{name}.yaml")
    group = _sample_group(recipe)
    sample = _package_yaml(f"sample/{group}.yaml")
    sample.update(recipe.get("sample") or {})
    if group == "thumos":  # feature steps: the model's own protocol, THUMOS14's 22 classes
        from cozoo.data.thumos.protocol import CLASS_NAMES as SAMPLE_CLASSES

        protocol = default
    elif group == "ntu":
        from cozoo.data.ntu.sample import SAMPLE_CLASSES

        base = default if isinstance(default, SkeletonInput) else SkeletonInput()
        protocol: Any = dataclasses.replace(
            base, frames=int(sample.get("frames", base.frames)),
            modality=str(sample.get("modality", base.modality)),
        )  # fmt: skip
    else:
        from cozoo.data.kinetics.sample import SAMPLE_CLASSES

        protocol = VideoInput(
            frames=int(sample["frames"]),
            sampling_rate=int(sample["sampling_rate"]),
            short_side=int(sample["short_side"]),
            crop=int(sample["crop"]),
        )
    kwargs: Dict[str, Any] = {"num_classes": len(SAMPLE_CLASSES)}
    if isinstance(sample.get("pool_size"), int):
        kwargs["pool_size"] = sample["pool_size"]
    for key, value in (recipe.get("model") or {}).items():
        if key not in ("name", "weights") and isinstance(value, (int, float, str)):
            kwargs[key] = value
    return protocol, kwargs, list(SAMPLE_CLASSES)


def _checkpoint_protocol(checkpoint: Mapping[str, Any], default: Any) -> Tuple[Any, List[str]]:
    """Protocol and class names of a ``cozoo.train`` checkpoint (its data module's
    hyper-parameters); ``default`` when it saved none."""
    data = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    task = dict(checkpoint.get("hyper_parameters") or {})
    num_classes = (task.get("model") or {}).get("num_classes")
    if task.get("input_key") == "features":  # online detection: THUMOS14 classes
        from cozoo.data.thumos.protocol import CLASS_NAMES

        return default, list(CLASS_NAMES)
    if task.get("input_key", "video") == "skeleton" or "benchmark" in data:
        from cozoo.data.ntu import class_names
        from cozoo.data.ntu.sample import SAMPLE_CLASSES

        names = list(SAMPLE_CLASSES) if not data.get("root") else class_names(data["benchmark"])
        protocol = default
        if isinstance(default, SkeletonInput):
            protocol = dataclasses.replace(default, modality=data.get("modality", "joint"))
        return protocol, names
    if not data:
        return default, []
    from cozoo.data.kinetics.sample import SAMPLE_CLASSES

    protocol = VideoInput(
        **{f.name: data[f.name] for f in dataclasses.fields(VideoInput) if f.name in data}
    )
    names = list(SAMPLE_CLASSES) if not data.get("root") else []
    if num_classes is not None and names and len(names) != num_classes:
        names = []
    return protocol, names


def _published_class_names(meta: Any) -> List[str]:
    if isinstance(meta.input, SkeletonInput) and meta.num_classes in (60, 120):
        from cozoo.data.ntu import class_names

        return class_names(f"ntu{meta.num_classes}")
    return []  # Kinetics-400's names are not shipped: "class k"


def _fit_features(model: nn.Module, protocol: Any) -> Any:
    """A feature protocol with the width the built network reads (``feature_dim``: a model
    built narrower or wider than its published one, e.g. other features)."""
    network = getattr(model, "network", model)  # a SlidingWindowNetwork's regular network
    dim = getattr(network, "feature_dim", None)
    if isinstance(protocol, FeatureInput) and isinstance(dim, int) and dim != protocol.dim:
        return dataclasses.replace(protocol, dim=dim)
    return protocol


def load_stream_model(
    name: str,
    weights: Optional[str] = None,
    runs_root: str = "runs",
    warn: Callable[[str], None] = print,
    **kwargs: Any,
) -> StreamModel:
    """Build ``name`` with ``weights`` (see the module docstring) in eval mode."""
    enum = get_model_weights(name)
    default_meta = enum.DEFAULT.meta if enum is not None else None
    default_protocol = default_meta.input if default_meta is not None else None
    if weights is None:
        found = newest_run_checkpoint(runs_root, name)
        if found is not None:
            warn(f"cozoo.stream: {name} with the newest run checkpoint {found}")
            weights = str(found)
    if weights is None:
        protocol, names = default_protocol, []
        extra: Dict[str, Any] = {}
        if _package_yaml(f"recipe/{name}.yaml"):  # the settings of its recipe on the sample
            protocol, extra, names = sample_protocol(name, default_protocol)
        warn(
            "\n" + "!" * 78 + f"\n!! cozoo.stream: NO WEIGHTS: {name} has RANDOM weights (no "
            f"{runs_root}/{name}/*/checkpoints/last.ckpt;\n!! train one with python -m "
            f"cozoo.train recipe={name}, or pass weights=DEFAULT|PATH). Its predictions are "
            "noise.\n" + "!" * 78
        )
        model = create_model(name, weights=None, **{**extra, **kwargs})
        protocol = _fit_features(model, protocol)
        return StreamModel(model.eval(), name, "random", protocol, names, random=True)
    path = Path(os.path.expanduser(str(weights)))
    if path.is_file():
        try:  # a cozoo.train checkpoint says what it was trained on; other files do not
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except Exception:
            checkpoint = {}
        if not isinstance(checkpoint, Mapping):
            checkpoint = {}
        saved = (checkpoint.get("hyper_parameters") or {}).get("model") or {}
        if isinstance(saved, Mapping) and saved.get("name") and saved["name"] != name:
            warn(f"cozoo.stream: {path} holds a {saved['name']!r} network: streaming that")
            return load_stream_model(str(saved["name"]), str(path), runs_root, warn, **kwargs)
        protocol, names = _checkpoint_protocol(checkpoint, default_protocol)
        model = create_model(name, weights=str(path), **kwargs)
        protocol = _fit_features(model, protocol)
        return StreamModel(model.eval(), name, str(path), protocol, names or None)
    model = create_model(name, weights=weights, **kwargs)
    member = enum.verify(weights) if enum is not None else None
    meta = member.meta if member is not None else default_meta
    protocol = meta.input if meta is not None else None
    names = _published_class_names(meta) if meta is not None else []
    label = f"{type(member).__name__}.{member.name}" if member is not None else str(weights)
    return StreamModel(model.eval(), name, label, protocol, names or None)


def video_step(frame: np.ndarray, protocol: VideoInput) -> Tensor:
    """One frame of a video protocol: uint8 RGB ``(H, W, 3)`` -> float32 ``(3, crop, crop)``:
    scaled to [0, 1], short side resized to ``short_side`` (bilinear, no antialias), centre
    crop, normalised: per frame exactly what :func:`cozoo.data.transforms.clip_transform` does to
    a clip."""
    from torchvision.transforms.v2 import functional as F

    x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().div_(255.0)
    x = F.resize(x, [protocol.short_side], antialias=False)
    x = F.center_crop(x, [protocol.crop, protocol.crop])
    return F.normalize(x, list(protocol.mean), list(protocol.std))


def step_transform(protocol: Any) -> Callable[[Any], Tensor]:
    """Raw frame data -> one step ``(C, *S)`` of the model (without the batch dim)."""
    if isinstance(protocol, VideoInput):
        return lambda data: video_step(data, protocol)
    return lambda data: torch.from_numpy(np.array(data, dtype=np.float32))
