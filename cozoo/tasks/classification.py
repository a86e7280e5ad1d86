"""Video classification: train on clips, evaluate on clips *and* frame by frame.

``VideoClassifier`` wraps a registered continual video model (``cozoo.models``) in a
``LightningModule``:

- **training** runs the regular clip forward: ``forward(clip (B, 3, T, H, W))`` -> logits
  ``(B, K, T_out)``, averaged over ``T_out`` -> ``(B, K)``, cross-entropy with the labels;
- **validation / test** evaluate every batch twice and log both with torchmetrics (top-1/top-5):

  - ``clip`` mode: the same clip forward as in training (``{stage}/clip/top1``);
  - ``continual`` mode (``{stage}/continual/top1``), the co3d protocol (spec video-models §5):
    ``clean_state()`` for every batch, warm up on the clip's own leading frames, predict from
    the last ``predict_steps`` frames, average their outputs::

        frames   f0 f1 ... f[T-k-1] | f[T-k] ... f[T-1]        (T frames, k = predict_steps)
        step     warm-up (outputs    | outputs averaged -> logits (B, K)
                 discarded, None     |
                 until step `delay`) |

    so a clip needs ``T >= delay + predict_steps`` frames (``required_frames()``). The data
    module delivers such longer clips for evaluation (``continual_frames``); the clip mode
    sees the ``clip_frames`` frames of it that form the protocol's clip (``clip_align``: at the
    end of the longer clip, where the continual prediction is made, or at its centre).

  ``{stage}/gap/top1`` = clip top-1 − continual top-1 makes a difference between the two modes
  visible at a glance. A continual model whose weights were trained for clips is expected to
  differ a little in steady state (no temporal zero padding), so the gap is a measurement, not a
  failure.

Every constructor argument is a primitive (``str``/``int``/``float``/``bool``/``None``), saved as
the checkpoint's hyper-parameters, so checkpoints load with ``torch.load(weights_only=True)``.
The torch, numpy and Python RNG states are saved in checkpoints too (as tensors and lists), so
a resumed run draws the same dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from cozoo.co.logging import getLogger
from cozoo.models import create_model

__all__ = ["MODES", "VideoClassifier", "get_rng_states", "init_from_scratch", "set_rng_states"]

logger = getLogger(__name__)

MODES: Tuple[str, ...] = ("clip", "continual")
"""Evaluation modes: ``clip`` (``forward`` on the clip) and ``continual`` (``forward_step``)."""

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULERS = ("cosine", "constant")
_INITS = ("pyslowfast", "torch")


class VideoClassifier(LightningModule):
    """Clip training and clip + continual evaluation of a ``cozoo.models`` video classifier.

    Args:
        arch: registered model name (``cozoo.models.list_models()``), e.g. ``"cox3d_m"``.
        num_classes: K, classes of the dataset.
        pool_size: P, the continual head pool in frames (None: the builder's default).
        temporal_fill: ``"zeros"`` or ``"replicate"``: state fill after ``clean_state()``.
        dropout: dropout before the projection.
        weights: checkpoint to start from (``"DEFAULT"``, a weights member's name, a path or a
            URL; see ``cozoo.models.load_weights``); None trains from scratch.
        init: initialisation when training from scratch (``weights=None``): ``"pyslowfast"``
            (:func:`init_from_scratch`: Kaiming-normal convolutions, the last BN of every
            residual branch zeroed, a small projection) or ``"torch"`` (the layers' defaults).
        optimizer: ``"sgd"`` (momentum, Nesterov off) or ``"adamw"``.
        lr: peak learning rate; ``momentum``: SGD momentum; ``weight_decay``: applied to the
            weights of convolutions and linear layers only (not to norms and biases).
        scheduler: ``"cosine"`` (per step, to 0 at the end of training) or ``"constant"``.
        warmup_fraction: fraction of the optimizer steps with a linear warm-up from 0.
        label_smoothing: of the cross-entropy.
        clip_eval / continual_eval: which modes validation and test run.
        predict_steps: continual mode: frames after the warm-up whose outputs are averaged.
        clip_frames: clip mode: frames of the clip view at evaluation; a longer evaluation clip
            is cut to ``clip_frames`` frames (None: the whole clip) ...
        clip_align: ... at its ``"end"`` or its ``"center"``: where the data module put the
            protocol's clip in the longer continual clip (``KineticsDataModule``'s
            ``continual_align``).

    Batches are dicts ``{"video": (B, 3, T, H, W) float, "label": (B,) int64, ...}`` (extra
    keys are ignored).
    """

    def __init__(
        self,
        arch: str = "cox3d_m",
        num_classes: int = 400,
        pool_size: Optional[int] = None,
        temporal_fill: str = "zeros",
        dropout: float = 0.5,
        weights: Optional[str] = None,
        init: str = "pyslowfast",
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-5,
        scheduler: str = "cosine",
        warmup_fraction: float = 0.0,
        label_smoothing: float = 0.0,
        clip_eval: bool = True,
        continual_eval: bool = True,
        predict_steps: int = 1,
        clip_frames: Optional[int] = None,
        clip_align: str = "end",
    ):
        super().__init__()
        if optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS}, got {optimizer!r}")
        if scheduler not in _SCHEDULERS:
            raise ValueError(f"scheduler must be one of {_SCHEDULERS}, got {scheduler!r}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        if predict_steps < 1:
            raise ValueError(f"predict_steps must be >= 1, got {predict_steps}")
        if clip_align not in ("end", "center"):
            raise ValueError(f"clip_align must be 'end' or 'center', got {clip_align!r}")
        if not (clip_eval or continual_eval):
            raise ValueError("at least one of clip_eval and continual_eval must be True")
        self.save_hyperparameters()
        _check_primitive_hparams(self.hparams)

        kwargs: Dict[str, Any] = {
            "num_classes": num_classes,
            "temporal_fill": temporal_fill,
            "dropout": dropout,
        }
        if pool_size is not None:
            kwargs["pool_size"] = pool_size
        self.model: nn.Module = create_model(arch, weights=weights, **kwargs)
        if weights is None and init == "pyslowfast":
            init_from_scratch(self.model)
        self.modes: Tuple[str, ...] = tuple(
            m for m, on in zip(MODES, (clip_eval, continual_eval)) if on
        )
        top5 = min(5, num_classes)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{mode}": MetricCollection(
                    {
                        "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                        f"top{top5}": MulticlassAccuracy(num_classes, top_k=top5, average="micro"),
                    },
                    prefix=f"{stage}/{mode}/",
                )
                for stage in ("val", "test")
                for mode in self.modes
            }
        )
        self._steps_timed = 0
        self._seconds_timed = 0.0

    @classmethod
    def from_checkpoint(
        cls, path: str, map_location: Any = "cpu", **overrides: Any
    ) -> VideoClassifier:
        """A module from a Lightning checkpoint of ``cozoo.train``, read with
        ``torch.load(weights_only=True)``; ``overrides`` replace saved hyper-parameters (e.g.
        ``continual_eval=False``). The saved ``weights`` are not fetched again: the checkpoint's
        own state dict is loaded."""
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        hparams = {**checkpoint["hyper_parameters"], **overrides, "weights": None}
        module = cls(**hparams)
        module.load_state_dict(checkpoint["state_dict"])
        return module

    # ---- the two modes -------------------------------------------------------------------------
    def forward(self, video: Tensor) -> Tensor:
        """Clip mode: ``video (B, 3, T, H, W)`` -> logits ``(B, K)`` (outputs averaged over
        time)."""
        return self.model(video).mean(dim=2)

    @property
    def delay(self) -> int:
        """Steps the model needs after ``clean_state()`` before its first output."""
        return int(self.model.delay)

    def required_frames(self) -> int:
        """Frames a clip needs for the continual mode: ``delay + predict_steps``."""
        return self.delay + int(self.hparams.predict_steps)

    @torch.no_grad()
    def forward_continual(self, video: Tensor) -> Tensor:
        """Continual mode: ``video (B, 3, T, H, W)`` streamed frame by frame from a clean state.

        The first ``T - predict_steps`` frames warm the state up (their outputs are discarded),
        the outputs of the last ``predict_steps`` frames are averaged -> logits ``(B, K)``.
        Raises ``ValueError`` when ``T < delay + predict_steps``.
        """
        frames = video.shape[2]
        warm = frames - int(self.hparams.predict_steps)
        if warm < self.delay:
            raise ValueError(
                f"continual evaluation of {self.hparams.arch} (pool_size "
                f"{getattr(self.model, 'pool_size', '?')}) needs clips of at least "
                f"delay + predict_steps = {self.required_frames()} frames, got {frames}; "
                f"set data.continual_frames={self.required_frames()} (or more)"
            )
        model = self.model
        start = time.perf_counter()
        model.clean_state()
        if warm > 0:
            model.forward_steps(video[:, :, :warm], pad_end=False)
        out = model.forward_steps(video[:, :, warm:], pad_end=False)
        model.clean_state()  # free the state; the next batch starts over anyway
        self._seconds_timed += time.perf_counter() - start
        self._steps_timed += frames * video.shape[0]
        if out is None:  # e.g. CoI3D emits on every 2nd step only
            raise ValueError(
                f"{self.hparams.arch} produced no output in the last {self.hparams.predict_steps} "
                f"step(s) of a {frames}-frame clip (output stride {tuple(model.stride)}, delay "
                f"{self.delay}); use predict_steps >= the output stride"
            )
        return out.mean(dim=2)

    def continual_throughput(self) -> Optional[float]:
        """Frames × streams per second through ``forward_step`` in the current evaluation."""
        if not self._steps_timed:
            return None
        return self._steps_timed / max(self._seconds_timed, 1e-9)

    def clip_view(self, video: Tensor) -> Tensor:
        """The clip-mode view ``(B, 3, clip_frames, H, W)`` of an evaluation clip
        ``(B, 3, T, H, W)``: its last (``clip_align="end"``) or central ``clip_frames`` frames."""
        keep = self.hparams.clip_frames
        frames = video.shape[2]
        if keep is None or frames <= keep:
            return video
        start = frames - keep if self.hparams.clip_align == "end" else (frames - keep) // 2
        return video[:, :, start : start + keep]

    # ---- training ------------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        video, label = batch["video"], batch["label"]
        logits = self(video)
        loss = F.cross_entropy(logits, label, label_smoothing=self.hparams.label_smoothing)
        top1 = (logits.argmax(dim=1) == label).float().mean()
        size = video.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log("train/top1", top1, on_step=False, on_epoch=True, batch_size=size)
        return loss

    # ---- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, stage: str, batch: Mapping[str, Tensor]) -> None:
        video, label = batch["video"], batch["label"]
        size = video.shape[0]
        if "clip" in self.modes:
            logits = self(self.clip_view(video))
            loss = F.cross_entropy(logits, label)
            self.log(f"{stage}/clip/loss", loss, on_epoch=True, sync_dist=True, batch_size=size)
            self.metrics[f"{stage}_clip"].update(logits, label)
        if "continual" in self.modes:
            self.metrics[f"{stage}_continual"].update(self.forward_continual(video), label)

    def _evaluation_start(self) -> None:
        self._steps_timed = 0
        self._seconds_timed = 0.0

    def _evaluation_end(self, stage: str) -> None:
        values: Dict[str, Tensor] = {}
        for mode in self.modes:
            collection = self.metrics[f"{stage}_{mode}"]
            values.update(collection.compute())
            collection.reset()
        if len(self.modes) == 2:
            values[f"{stage}/gap/top1"] = (
                values[f"{stage}/clip/top1"] - values[f"{stage}/continual/top1"]
            )
        self.log_dict(values, sync_dist=False)  # torchmetrics has already synced the states
        rate = self.continual_throughput()
        if rate is not None:
            self.log(f"{stage}/continual/steps_per_s", rate, rank_zero_only=True)

    def on_validation_epoch_start(self) -> None:
        self._evaluation_start()

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_end("val")

    def on_test_epoch_start(self) -> None:
        self._evaluation_start()

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def on_test_epoch_end(self) -> None:
        self._evaluation_end("test")

    # ---- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self) -> Dict[str, Any]:
        hp = self.hparams
        decay: List[nn.Parameter] = []
        no_decay: List[nn.Parameter] = []
        for parameter in self.model.parameters():
            if parameter.requires_grad:
                (decay if parameter.ndim > 1 else no_decay).append(parameter)
        groups = [
            {"params": decay, "weight_decay": hp.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        if hp.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=hp.lr, momentum=hp.momentum
            )
        else:
            optimizer = torch.optim.AdamW(groups, lr=hp.lr)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = int(round(hp.warmup_fraction * total))
        schedule = _lr_factor_schedule(hp.scheduler, warmup, total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    # ---- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        checkpoint["rng_states"] = get_rng_states()

    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        """Resuming a fit restores the RNG states of the checkpoint. An uninterrupted run draws,
        after writing an epoch-end checkpoint, the seeds of the next epoch's loader iterator and
        then the dropout masks; a resumed run does the same from here, once the sanity check (if
        any) is over, so both draw the same numbers."""
        states = checkpoint.get("rng_states")
        if states is not None and self._fitting():
            self._rng_states_to_restore = states
            set_rng_states(states)

    def on_validation_end(self) -> None:
        states = getattr(self, "_rng_states_to_restore", None)
        if states is not None and self.trainer.sanity_checking:
            set_rng_states(states)  # the sanity check drew from the RNGs: undo that

    def on_train_start(self) -> None:
        self._rng_states_to_restore = None

    def _fitting(self) -> bool:
        trainer = self._trainer
        return trainer is not None and trainer.state.fn == "fit"


def init_from_scratch(model: nn.Module, projection_std: float = 0.01) -> nn.Module:
    """Initialise a ``cozoo.models`` network for training from scratch, in place, as
    PySlowFast's X3D/ResNet recipes do (``ZERO_INIT_FINAL_BN``, ``init_weights``).

    - convolutions: Kaiming normal (fan out, ReLU gain), biases 0;
    - batch norms: weight 1, bias 0, except the *last* one of every residual branch (a child
      module named ``branch``), whose weight is 0: every residual block starts as its
      shortcut, so the deep network starts shallow and trains from scratch in few steps;
    - linear layers (the projection to the classes): normal with ``projection_std``, bias 0.

    Returns ``model``.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=projection_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for name, module in model.named_modules():
        if name.split(".")[-1] == "branch":
            norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
            if norms and norms[-1].affine:
                nn.init.zeros_(norms[-1].weight)
    return model


def _lr_factor_schedule(kind: str, warmup: int, total: int):
    """``step -> lr factor``: linear warm-up over ``warmup`` steps, then constant or a cosine
    decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _check_primitive_hparams(hparams: Mapping[str, Any]) -> None:
    """Refuse anything but ``str``/``int``/``float``/``bool``/``None`` in hyper-parameters (they
    end up in checkpoints, which must load with ``weights_only=True``)."""
    for key, value in hparams.items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise TypeError(
                f"VideoClassifier hyper-parameter {key}={value!r} ({type(value).__name__}) is "
                "not a primitive (str, int, float, bool, None)"
            )


# --------------------------------------------------------------------------------------------
# RNG states as checkpoint-safe values (tensors, lists, numbers)
# --------------------------------------------------------------------------------------------
def get_rng_states() -> Dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states, as tensors and lists only."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    states: Dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore what ``get_rng_states`` returned."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )  # fmt: skip
    p = states["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
