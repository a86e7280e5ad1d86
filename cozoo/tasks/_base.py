"""``ContinualTask``: the LightningModule every task of cozoo builds on.

It owns what does not depend on the task's output:

- the network, built by ``cozoo.models.create_model(**model)`` from a nested ``model`` config of
  primitives (``{"name": "cox3d_m", "pool_size": 8, "weights": None, ...}``), initialised for
  training from scratch (``init``) when no weights are given;
- the optimiser and schedule from config dicts (``cozoo.tasks._optim``);
- the RNG states in every checkpoint, restored on resume (a resumed run draws the same numbers);
- the two evaluation modes of a continual network, with time at dim 2 of every input
  (``(B, C, T, H, W)`` video, ``(B, C, T, V, M)`` skeletons, ``(B, D, T)`` features):

  - ``clip``: ``forward`` on the protocol's clip view of the evaluation clip (``clip_view``);
  - ``continual``: ``clean_state()``, stream the clip step by step, keep the outputs of the last
    ``predict_steps`` steps (``forward_continual``)::

        steps   x0 x1 ... x[T-k-1] | x[T-k] ... x[T-1]        (T steps, k = predict_steps)
                warm-up (outputs    | outputs -> (B, K, k)
                discarded)          |

- throughput of the continual mode (steps x streams per second), logged per evaluation.

Every hyper-parameter is a primitive or a nested dict/list of primitives, so checkpoints load
with ``torch.load(weights_only=True)``. A task implements ``training_step``,
``evaluate_batch(stage, batch)``, ``compute_metrics(stage)`` and ``results_table(...)``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from cozoo.models import create_model

from ._optim import build_optimizer, build_scheduler, check_optimizer, check_scheduler
from ._rng import get_rng_states, set_rng_states

__all__ = ["INITS", "MODES", "ContinualTask", "check_hparams", "init_from_scratch"]

MODES: Tuple[str, ...] = ("clip", "continual")
"""Evaluation modes: ``clip`` (``forward`` on the clip) and ``continual`` (``forward_step``)."""

INITS = ("pyslowfast", "torch")
"""Initialisations from scratch: see ``init_from_scratch``; ``"torch"``: the layers' own."""

_PRIMITIVES = (str, int, float, bool, type(None))


def check_hparams(hparams: Mapping[str, Any], owner: str, path: str = "") -> None:
    """Refuse anything but primitives and nested dicts/lists of them (they end up in
    checkpoints, which must load with ``weights_only=True``)."""
    for key, value in hparams.items():
        where = f"{path}{key}"
        if isinstance(value, Mapping):
            check_hparams(value, owner, where + ".")
        elif isinstance(value, (list, tuple)):
            check_hparams({f"[{i}]": v for i, v in enumerate(value)}, owner, where)
        elif not isinstance(value, _PRIMITIVES):
            raise TypeError(
                f"{owner} hyper-parameter {where}={value!r} ({type(value).__name__}) is not a "
                "primitive (str, int, float, bool, None) or a dict/list of them"
            )


def init_from_scratch(model: nn.Module, projection_std: float = 0.01) -> nn.Module:
    """Initialise a network for training from scratch, in place, as PySlowFast's X3D/ResNet
    recipes do (``ZERO_INIT_FINAL_BN``, ``init_weights``).

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


class ContinualTask(LightningModule):
    """The shared part of cozoo's tasks (see the module docstring).

    Args:
        model: the network's config: ``name`` (a registered model) and the builder's kwargs,
            ``weights`` included (``"DEFAULT"``, a member's name, a path or a URL; None:
            from scratch).
        input_key: the batch key of the model input (``"video"``, ``"skeleton"``...).
        init: initialisation from scratch (``INITS``; only without weights).
        optimizer, scheduler: see ``cozoo.tasks._optim``.
        clip_eval, continual_eval: which modes validation and test run.
        predict_steps: continual mode: the steps after the warm-up whose outputs are kept.
        clip_frames: clip mode: the time steps of the clip view (None: the whole clip) ...
        clip_align: ... at the ``"end"`` of the evaluation clip (where the continual
            prediction is made) or at its ``"center"``.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        input_key: str = "video",
        init: str = "pyslowfast",
        optimizer: Optional[Mapping[str, Any]] = None,
        scheduler: Optional[Mapping[str, Any]] = None,
        clip_eval: bool = True,
        continual_eval: bool = True,
        predict_steps: int = 1,
        clip_frames: Optional[int] = None,
        clip_align: str = "end",
    ):
        super().__init__()
        name = type(self).__name__
        if not isinstance(model, Mapping) or not isinstance(model.get("name"), str):
            raise ValueError(f"{name}: model must be a dict with the model's 'name', got {model!r}")
        if init not in INITS:
            raise ValueError(f"{name}: init must be one of {INITS}, got {init!r}")
        if predict_steps < 1:
            raise ValueError(f"{name}: predict_steps must be >= 1, got {predict_steps}")
        if clip_align not in ("end", "center"):
            raise ValueError(f"{name}: clip_align must be 'end' or 'center', got {clip_align!r}")
        if not (clip_eval or continual_eval):
            raise ValueError(f"{name}: at least one of clip_eval and continual_eval must be True")
        check_optimizer(optimizer or {"name": "sgd"})
        check_scheduler(scheduler or {"name": "cosine"})
        self.save_hyperparameters()
        check_hparams(self.hparams, name)
        self.model: nn.Module = create_model(**dict(model))
        if model.get("weights") is None and init == "pyslowfast":
            init_from_scratch(self.model)
        self.modes: Tuple[str, ...] = tuple(
            m for m, on in zip(MODES, (clip_eval, continual_eval)) if on
        )
        self._steps_timed = 0
        self._seconds_timed = 0.0
        self._rng_states_to_restore: Optional[Dict[str, Any]] = None

    # ---- the network and its two modes ----------------------------------------------------------
    @property
    def model_name(self) -> str:
        return str(self.hparams.model["name"])

    @property
    def delay(self) -> int:
        """Steps the network needs after ``clean_state()`` before its first output."""
        return int(self.model.delay)

    def required_frames(self) -> int:
        """Time steps a clip needs for the continual mode: ``delay + predict_steps``."""
        return self.delay + int(self.hparams.predict_steps)

    def clip_view(self, x: Tensor) -> Tensor:
        """The clip-mode view of an evaluation clip (time at dim 2): its last
        (``clip_align="end"``) or central ``clip_frames`` steps."""
        keep = self.hparams.clip_frames
        frames = x.shape[2]
        if keep is None or frames <= keep:
            return x
        start = frames - keep if self.hparams.clip_align == "end" else (frames - keep) // 2
        return x[:, :, start : start + keep]

    @torch.no_grad()
    def forward_continual(self, x: Tensor) -> Tensor:
        """Continual mode: the clip ``x`` (time at dim 2) streamed step by step from a clean
        state; the outputs of the last ``predict_steps`` steps, ``(B, K, predict_steps')``
        (fewer where the network's output stride skips steps).

        Raises ``ValueError`` when ``T < delay + predict_steps`` or no output came."""
        frames, keep = x.shape[2], int(self.hparams.predict_steps)
        warm = frames - keep
        if warm < self.delay:
            raise ValueError(
                f"continual evaluation of {self.model_name} needs clips of at least "
                f"delay + predict_steps = {self.required_frames()} steps, got {frames}; "
                f"set data.continual_frames={self.required_frames()} (or more)"
            )
        model = self.model
        start = time.perf_counter()
        model.clean_state()
        if warm > 0:
            model.forward_steps(x[:, :, :warm], pad_end=False)
        out = model.forward_steps(x[:, :, warm:], pad_end=False)
        model.clean_state()  # free the state; the next batch starts over anyway
        self._seconds_timed += time.perf_counter() - start
        self._steps_timed += frames * x.shape[0]
        if out is None:  # e.g. CoI3D emits on every 2nd step only
            raise ValueError(
                f"{self.model_name} produced no output in the last {keep} step(s) of a "
                f"{frames}-step clip (output stride {tuple(model.stride)}, delay {self.delay}); "
                "use predict_steps >= the output stride"
            )
        return out

    def continual_throughput(self) -> Optional[float]:
        """Steps x streams per second through the continual mode in the current evaluation."""
        if not self._steps_timed:
            return None
        return self._steps_timed / max(self._seconds_timed, 1e-9)

    def batch_input(self, batch: Mapping[str, Any]) -> Tensor:
        """``batch[input_key]``; a ``KeyError`` that names the keys the batch has instead."""
        key = self.hparams.input_key
        if key not in batch:
            raise KeyError(
                f"{type(self).__name__}: the batch has no {key!r} (input_key={key!r}); its "
                f"keys: {', '.join(map(repr, batch))}. Set task.input_key to the data module's"
            )
        return batch[key]

    # ---- the evaluation loop --------------------------------------------------------------------
    def evaluate_batch(self, stage: str, batch: Mapping[str, Any]) -> None:
        """Update the metrics of ``stage`` (``"val"``/``"test"``) with one batch."""
        raise NotImplementedError

    def compute_metrics(self, stage: str) -> Dict[str, Tensor]:
        """The metrics of ``stage`` over the evaluation (and reset them)."""
        raise NotImplementedError

    def _evaluation_start(self) -> None:
        self._steps_timed = 0
        self._seconds_timed = 0.0

    def _evaluation_end(self, stage: str) -> None:
        self.log_dict(self.compute_metrics(stage), sync_dist=False)  # metrics synced already
        rate = self.continual_throughput()
        if rate is not None:
            self.log(f"{stage}/continual/steps_per_s", rate, rank_zero_only=True)

    def on_validation_epoch_start(self) -> None:
        self._evaluation_start()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self.evaluate_batch("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_end("val")

    def on_test_epoch_start(self) -> None:
        self._evaluation_start()

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self.evaluate_batch("test", batch)

    def on_test_epoch_end(self) -> None:
        self._evaluation_end("test")

    # ---- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self) -> Dict[str, Any]:
        hp = self.hparams
        optimizer = build_optimizer(self.model.parameters(), hp.optimizer or {"name": "sgd"})
        schedule = build_scheduler(
            optimizer, hp.scheduler or {"name": "cosine"}, self.trainer.estimated_stepping_batches
        )
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    # ---- checkpoints ----------------------------------------------------------------------------
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
        states = self._rng_states_to_restore
        if states is not None and self.trainer.sanity_checking:
            set_rng_states(states)  # the sanity check drew from the RNGs: undo that

    def on_train_start(self) -> None:
        self._rng_states_to_restore = None

    def _fitting(self) -> bool:
        trainer = self._trainer
        return trainer is not None and trainer.state.fn == "fit"
