"""Classification: train on clips, evaluate on clips *and* step by step.

``ClassificationTask`` wraps any registered continual classifier (``cozoo.models``) whose clip
output is logits ``(B, K, T_out)``:

- **training** runs the regular clip forward, averages the logits over ``T_out`` -> ``(B, K)``
  and takes the cross-entropy with the labels;
- **validation / test** evaluate every batch in both modes of ``ContinualTask`` and log top-1 /
  top-k with torchmetrics: ``{stage}/clip/top1`` (the clip view, as in training) and
  ``{stage}/continual/top1`` (the outputs of the last ``predict_steps`` steps, averaged), the
  Hedegaard & Iosifidis protocol for continual networks: clean state per clip, warm-up on the
  clip's own leading steps, prediction from its last step.

``{stage}/gap/top1`` = clip top-1 - continual top-1 makes a difference between the modes visible
at a glance. A continual network trained on clips is expected to differ a little in steady
state (no temporal zero padding), so the gap is a measurement, not a failure.

Batches are dicts ``{input_key: (B, C, T, ...) float, "label": (B,) int64, ...}`` (extra keys
are ignored); ``input_key`` is ``"video"`` for ``(B, 3, T, H, W)`` clips.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from cozoo.models import get_model_weights, variant_label

from ._base import MODES, ContinualTask
from .results import ResultRow, format_table, published_result, weights_label, weights_member

__all__ = ["CLIP_OUTPUTS", "ClassificationTask", "VideoClassifier", "upgrade_hparams"]

#: How the clip mode turns the clip's logits ``(B, K, T_out)`` into ``(B, K)``: their ``mean``
#: over time, or the ``first`` output (the published protocol of the original continual
#: skeleton networks, whose first output is the prediction at frame 296 of 300).
CLIP_OUTPUTS = ("mean", "first")

#: The published metric the results table puts beside the measured top-1.
PUBLISHED_METRIC = "top-1 accuracy"

_LEGACY_MODEL = ("num_classes", "pool_size", "temporal_fill", "dropout", "weights")
_LEGACY_OPTIMIZER = ("lr", "momentum", "weight_decay")


class ClassificationTask(ContinualTask):
    """Clip training and clip + continual evaluation of a continual classifier.

    Args:
        model: the network's config (``ContinualTask``); ``num_classes`` K is required.
        label_smoothing: of the cross-entropy.
        clip_output: ``"mean"`` or ``"first"`` (``CLIP_OUTPUTS``), in training and clip mode.
        **kwargs: ``ContinualTask``'s (``input_key``, ``init``, ``optimizer``, ``scheduler``,
            ``clip_eval``, ``continual_eval``, ``predict_steps``, ``clip_frames``,
            ``clip_align``).
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        label_smoothing: float = 0.0,
        clip_output: str = "mean",
        **kwargs: Any,
    ):
        if not isinstance(model, Mapping) or not model.get("num_classes"):
            raise ValueError(f"ClassificationTask: model needs num_classes, got {model!r}")
        if clip_output not in CLIP_OUTPUTS:
            raise ValueError(
                f"ClassificationTask: clip_output must be one of {CLIP_OUTPUTS}, "
                f"got {clip_output!r}"
            )
        super().__init__(model, **kwargs)
        #: The weights entry whose published figures a weights *file* is compared with (set by
        #: ``cozoo.evaluate`` from the recipe's ``published.weights``).
        self.published_weights: Optional[str] = None
        num_classes = int(model["num_classes"])
        top_k = min(5, num_classes)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{mode}": MetricCollection(
                    {
                        "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                        f"top{top_k}": MulticlassAccuracy(
                            num_classes, top_k=top_k, average="micro"
                        ),
                    },
                    prefix=f"{stage}/{mode}/",
                )
                for stage in ("val", "test")
                for mode in self.modes
            }
        )

    @classmethod
    def from_checkpoint(
        cls, path: str, map_location: Any = "cpu", **overrides: Any
    ) -> ClassificationTask:
        """A task from a Lightning checkpoint of ``cozoo.train``, read with
        ``torch.load(weights_only=True)``; ``overrides`` replace saved hyper-parameters (e.g.
        ``continual_eval=False``). The saved ``weights`` are not fetched again: the checkpoint's
        own state dict is loaded. Checkpoints of cozoo 0.1 (flat hyper-parameters) load too."""
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        hparams = {**upgrade_hparams(checkpoint["hyper_parameters"]), **overrides}
        hparams["model"] = {**hparams["model"], "weights": None}
        task = cls(**hparams)
        task.load_state_dict(checkpoint["state_dict"])
        return task

    # ---- the two modes --------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Clip mode: ``x (B, C, T, ...)`` -> logits ``(B, K)`` (averaged over time, or the
        first output: ``clip_output``)."""
        logits = self.model(x)
        return logits[:, :, 0] if self.hparams.clip_output == "first" else logits.mean(dim=2)

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        x, label = self.batch_input(batch), batch["label"]
        logits = self(x)
        loss = F.cross_entropy(logits, label, label_smoothing=self.hparams.label_smoothing)
        top1 = (logits.argmax(dim=1) == label).float().mean()
        size = x.shape[0]
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log("train/top1", top1, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def evaluate_batch(self, stage: str, batch: Mapping[str, Any]) -> None:
        x, label = self.batch_input(batch), batch["label"]
        size = x.shape[0]
        if "clip" in self.modes:
            logits = self(self.clip_view(x))
            loss = F.cross_entropy(logits, label)
            self.log(f"{stage}/clip/loss", loss, on_epoch=True, sync_dist=True, batch_size=size)
            self.metrics[f"{stage}_clip"].update(logits, label)
        if "continual" in self.modes:
            logits = self.forward_continual(x).mean(dim=2)
            self.metrics[f"{stage}_continual"].update(logits, label)

    def compute_metrics(self, stage: str) -> Dict[str, Tensor]:
        values: Dict[str, Tensor] = {}
        for mode in self.modes:
            collection = self.metrics[f"{stage}_{mode}"]
            values.update(collection.compute())
            collection.reset()
        if len(self.modes) == 2:
            values[f"{stage}/gap/top1"] = (
                values[f"{stage}/clip/top1"] - values[f"{stage}/continual/top1"]
            )
        return values

    # ---- the results table ----------------------------------------------------------------------
    def variant(self) -> Dict[str, Any]:
        """The builder kwargs of the network that published figures are keyed by (those the
        weights' variants name, e.g. ``{"pool_size": 64}``)."""
        enum = get_model_weights(self.model_name)
        keys = set() if enum is None else {k for v in enum.DEFAULT.meta.variants for k in v.kwargs}
        return {k: getattr(self.model, k) for k in sorted(keys) if hasattr(self.model, k)}

    def results_rows(
        self, metrics: Mapping[str, float], stage: str, ckpt_path: Optional[str] = None
    ) -> List[ResultRow]:
        """One row per evaluated mode: top-1/top-k (%) from the logged ``metrics``, the
        published top-1 of the weights beside the continual mode's (none for a run's own
        checkpoint: nothing is published for it)."""
        weights = self.hparams.model.get("weights")
        variant = self.variant()
        # A weights file (the skeleton checkpoints have no URL) is compared with the entry the
        # recipe names; a two-stream model with the entry's two-stream result.
        source = weights
        if weights_member(self.model_name, weights) is None:
            source = self.published_weights
        setting = {"streams": 2} if getattr(self.model, "streams", 1) == 2 else None
        published = None if ckpt_path else published_result(
            self.model_name, source, PUBLISHED_METRIC, variant, setting
        )  # fmt: skip
        top_k = f"top{min(5, int(self.hparams.model['num_classes']))}"
        rows = []
        for mode in MODES:
            if mode not in self.modes:
                continue
            values = {
                f"{key[:3]}-{key[3:]} (%)": None
                if metrics.get(f"{stage}/{mode}/{key}") is None
                else 100.0 * float(metrics[f"{stage}/{mode}/{key}"])
                for key in ("top1", top_k)
            }
            continual = mode == "continual"
            rows.append(
                ResultRow(
                    model=self.model_name,
                    variant=variant_label(variant),
                    weights=weights_label(self.model_name, weights, ckpt_path),
                    mode=mode,
                    metrics=values,
                    headline="top-1 (%)",
                    published=published.value if published is not None and continual else None,
                    steps_per_s=metrics.get(f"{stage}/continual/steps_per_s")
                    if continual
                    else None,
                )
            )
        return rows

    def results_table(
        self, metrics: Mapping[str, float], stage: str, ckpt_path: Optional[str] = None
    ) -> str:
        """``results_rows`` as a Markdown table."""
        return format_table(self.results_rows(metrics, stage, ckpt_path))


VideoClassifier = ClassificationTask
"""cozoo 0.1's name of the task; video clips are its default input (``input_key="video"``)."""


def upgrade_hparams(hparams: Mapping[str, Any]) -> Dict[str, Any]:
    """The hyper-parameters of a cozoo 0.1 checkpoint (flat: ``arch``, ``num_classes``,
    ``lr``...) in today's nested form; today's are returned as they are."""
    hp = dict(hparams)
    if "model" in hp:
        return hp
    model = {"name": hp.pop("arch"), **{k: hp.pop(k) for k in _LEGACY_MODEL if k in hp}}
    optimizer = {"name": hp.pop("optimizer", "sgd")}
    optimizer.update({k: hp.pop(k) for k in _LEGACY_OPTIMIZER if k in hp})
    if optimizer["name"] == "adamw":
        optimizer.pop("momentum", None)
    scheduler = {"name": hp.pop("scheduler", "cosine")}
    if "warmup_fraction" in hp:
        scheduler["warmup_fraction"] = hp.pop("warmup_fraction")
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler, **hp}
