"""Online action detection: train on windows, evaluate on windows *and* by streaming each test
video step by step.

``OnlineDetectionTask`` wraps a registered detection model whose clip output on a window of
``T`` steps ``(B, D, T)`` is the logits of the window's last step ``(B, K, 1)`` and whose step
``(B, D)`` gives ``(B, K)`` (``cooadtr_b1``, ``cooadtr_b2``, ``oadtr``...):

- **training**: soft-target cross-entropy over all K logits on the window's last-step target
  (OadTR adds ``future_weight`` x the cross-entropy of its anticipated next steps);
- **validation / test** log per-frame mAP in two protocols (``cozoo.metrics.PerFrameMAP``):

  - ``{stage}/clip/map`` and ``{stage}/clip/map_lstr``: the data module's windows (steps
    ``T-1 .. L-10`` of every video, Ambiguous targets dropped: the OadTR protocol), each read
    with the positional offset its window has in the stream (``offset = start mod K``), so for
    a continual model they equal the streamed outputs;
  - ``{stage}/continual/map`` (OadTR protocol: the same steps) and ``{stage}/continual/map_lstr``
    (every step from ``T-1`` on, Ambiguous dropped): every video of the split streamed through
    ``forward_step`` from a clean state, ``stream_batch`` videos at a time as rows of one
    batched state (a row whose video has ended just idles until the batch is done).

``{stage}/gap/map`` = clip - continual mAP (0 up to float rounding for a continual model).
The first ``T-1`` steps of a video have no prediction and are never scored.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cozoo.metrics import PerFrameMAP
from cozoo.models import get_model_weights, variant_label

from ._base import MODES, ContinualTask
from .results import ResultRow, format_table, published_result, weights_label, weights_member

__all__ = ["OnlineDetectionTask", "soft_cross_entropy"]

PROTOCOLS = {"map": "oadtr", "map_lstr": "lstr"}
PUBLISHED_METRIC = "mAP"


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``-sum_c y_c log softmax(z)_c``, mean over rows: logits and soft targets ``(B, K)``."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


class OnlineDetectionTask(ContinualTask):
    """Window training and window + streaming evaluation of an online detector.

    Args:
        model: the network's config (``ContinualTask``).
        future_weight: weight of the anticipation loss (models with a decoder: OadTR).
        stream_batch: videos streamed side by side in the continual evaluation.
        ambiguous: index of the Ambiguous class (THUMOS14: 21).
        **kwargs: ``ContinualTask``'s (``input_key`` "features", ``init``, ``optimizer``,
            ``scheduler``, ``clip_eval``, ``continual_eval``).
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        future_weight: float = 0.5,
        stream_batch: int = 16,
        ambiguous: int = 21,
        input_key: str = "features",
        init: str = "torch",
        **kwargs: Any,
    ):
        super().__init__(model, input_key=input_key, init=init, **kwargs)
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{mode}_{key}": PerFrameMAP(protocol=protocol)
                for stage in ("val", "test")
                for mode in self.modes
                for key, protocol in PROTOCOLS.items()
            }
        )
        self.published_weights: Optional[str] = None

    # ---- the two forms of the network ------------------------------------------------------
    @property
    def _positional_rows(self) -> Optional[int]:
        position = getattr(self.model, "position", None)
        return None if position is None else int(position.num_embeds)

    def forward(self, x: Tensor, start: Optional[Tensor] = None) -> Tensor:
        """Window mode: ``x (B, D, T)`` -> logits ``(B, K)`` of the last step. ``start``: the
        windows' first stream steps ``(B,)``, for models with a recycling positional encoding
        (evaluation reads each window at its stream offset; without ``start``, at offset 0)."""
        rows = self._positional_rows
        if rows is not None and not self.training:
            offset = 0 if start is None else start % rows
            return self.model(x, offset=offset)[:, :, -1]
        return self.model(x)[:, :, -1]

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        x, target = self.batch_input(batch), batch["target"]
        network = getattr(self.model, "network", None)
        future = None
        if network is not None and getattr(network, "has_decoder", False):
            logits, future = network.forward_with_future(x)
        else:
            logits = self(x)
        loss = soft_cross_entropy(logits, target)
        size = x.shape[0]
        if future is not None and "future" in batch:
            wanted = batch["future"]  # (B, Q, K)
            keep = wanted.argmax(-1) != self.hparams.ambiguous
            if keep.any():
                anticipation = soft_cross_entropy(future[keep], wanted[keep])
                self.log("train/future_loss", anticipation, on_epoch=True, batch_size=size)
                loss = loss + self.hparams.future_weight * anticipation
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        return loss

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate_batch(self, stage: str, batch: Mapping[str, Any]) -> None:
        if "clip" not in self.modes:
            return
        x, target = self.batch_input(batch), batch["target"]
        start = batch["step"] - (x.shape[2] - 1) if "step" in batch else None
        logits = self(x, start)
        for key in PROTOCOLS:
            self.metrics[f"{stage}_clip_{key}"].update(logits, target)

    @torch.no_grad()
    def stream_videos(self, videos: Iterable[Any], stage: str) -> int:
        """Stream ``videos`` (``.features (D, L)``, ``.targets (L, K)``) step by step, a batch
        of ``stream_batch`` at a time, into the continual metrics; returns the steps streamed."""
        from cozoo.data.thumos import evaluated_steps

        streamed = 0
        batch: List[Any] = []
        for video in list(videos) + [None]:
            if video is not None:
                batch.append(video)
            if batch and (video is None or len(batch) == self.hparams.stream_batch):
                streamed += self._stream_batch(batch, stage, evaluated_steps)
                batch = []
        return streamed

    def _stream_batch(self, videos: Sequence[Any], stage: str, evaluated_steps) -> int:
        device = self.device
        length = max(v.features.shape[1] for v in videos)
        features = torch.zeros(len(videos), videos[0].features.shape[0], length, device=device)
        for row, video in enumerate(videos):
            features[row, :, : video.features.shape[1]] = video.features.to(device)
        model = self.model
        started = time.perf_counter()
        model.clean_state()
        outputs: List[Optional[Tensor]] = [
            model.forward_step(features[:, :, t]) for t in range(length)
        ]
        model.clean_state()
        self._seconds_timed += time.perf_counter() - started
        self._steps_timed += sum(v.features.shape[1] for v in videos)
        first = next((t for t, y in enumerate(outputs) if y is not None), None)
        if first is None:  # every video of the batch is shorter than the window: nothing scored
            return length * len(videos)
        logits = torch.stack(outputs[first:], 1)  # (B, L - first, K)
        for row, video in enumerate(videos):
            steps = video.features.shape[1]
            if steps <= first:
                continue
            scores, target = logits[row, : steps - first], video.targets[first:].to(device)
            oadtr = evaluated_steps(video.targets)[first:].to(device)
            self.metrics[f"{stage}_continual_map"].update(scores[oadtr], target[oadtr])
            self.metrics[f"{stage}_continual_map_lstr"].update(scores, target)
        return length * len(videos)

    def _stream_split(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "videos"):
            raise RuntimeError(
                f"{type(self).__name__}: the continual evaluation streams whole videos and needs "
                "a data module with videos(split) (e.g. cozoo.data.thumos.ThumosDataModule)"
            )
        split = "test" if stage == "test" else "val"
        videos = list(datamodule.videos(split))
        rank, world = self.global_rank, max(self.trainer.world_size, 1)
        self.stream_videos(videos[rank::world], stage)

    def _evaluation_end(self, stage: str) -> None:
        if "continual" in self.modes and not self.trainer.sanity_checking:
            self._stream_split(stage)
        super()._evaluation_end(stage)

    def compute_metrics(self, stage: str) -> Dict[str, Tensor]:
        values: Dict[str, Tensor] = {}
        for mode in self.modes:
            if mode == "continual" and self.trainer.sanity_checking:
                continue
            for key in PROTOCOLS:
                metric = self.metrics[f"{stage}_{mode}_{key}"]
                values[f"{stage}/{mode}/{key}"] = metric.compute()
                metric.reset()
        if f"{stage}/clip/map" in values and f"{stage}/continual/map" in values:
            values[f"{stage}/gap/map"] = (
                values[f"{stage}/clip/map"] - values[f"{stage}/continual/map"]
            )
        return values

    # ---- the results table -------------------------------------------------------------------
    def results_rows(
        self, metrics: Mapping[str, float], stage: str, ckpt_path: Optional[str] = None
    ) -> List[ResultRow]:
        """One row per evaluated mode: mAP (%) in both protocols, the published mAP of the
        weights' entry (the recipe's, for a weights file) beside the OadTR-protocol one."""
        weights = self.hparams.model.get("weights")
        source = weights
        if weights_member(self.model_name, weights) is None:
            source = self.published_weights
        published = None if ckpt_path else published_result(
            self.model_name, source, PUBLISHED_METRIC, {}, None
        )  # fmt: skip
        rows = []
        for mode in MODES:
            if mode not in self.modes:
                continue
            values = {
                label: None
                if metrics.get(f"{stage}/{mode}/{key}") is None
                else 100.0 * float(metrics[f"{stage}/{mode}/{key}"])
                for key, label in (("map", "mAP (%)"), ("map_lstr", "mAP LSTR (%)"))
            }
            rows.append(
                ResultRow(
                    model=self.model_name,
                    variant=variant_label(self.variant()),
                    weights=weights_label(self.model_name, weights, ckpt_path),
                    mode=mode,
                    metrics=values,
                    headline="mAP (%)",
                    published=None if published is None else published.value,
                    steps_per_s=metrics.get(f"{stage}/continual/steps_per_s")
                    if mode == "continual"
                    else None,
                )
            )
        return rows

    def variant(self) -> Dict[str, Any]:
        """The builder kwargs published results are keyed by (``pe``, ``pe_rows``)."""
        enum = get_model_weights(self.model_name)
        keys = {"pe", "pe_rows"} if enum is not None else set()
        position = getattr(self.model, "position", None)
        if position is None:
            return {}
        found = {"pe": "learned" if position.learned else "fixed", "pe_rows": position.num_embeds}
        return {k: found[k] for k in sorted(keys)}

    def results_table(
        self, metrics: Mapping[str, float], stage: str, ckpt_path: Optional[str] = None
    ) -> str:
        """``results_rows`` as a Markdown table, then every published mAP of the entry for this
        variant: the paper's and the training logs' (mean and sd of five seeds)."""
        table = format_table(self.results_rows(metrics, stage, ckpt_path))
        weights = self.hparams.model.get("weights")
        member = weights_member(self.model_name, weights) or weights_member(
            self.model_name, self.published_weights
        )
        if member is None or ckpt_path:
            return table
        variant = self.variant()
        lines = []
        for result in member.meta.results(PUBLISHED_METRIC):
            if result.variant and dict(result.variant) != variant:
                continue
            spread = result.setting.get("sd")
            value = f"{result.value:.2f}" + ("" if spread is None else f" ± {spread:.2f}")
            lines.append(f"- {value} %: {result.source}")
        return table + f"\n\nPublished THUMOS14 mAP of {member!r}:\n" + "\n".join(lines)

    @classmethod
    def from_checkpoint(cls, path: str, **overrides: Any) -> OnlineDetectionTask:
        """The task saved by ``cozoo.train`` at ``path`` (``weights_only`` loading)."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        hparams = {**checkpoint["hyper_parameters"], **overrides}
        hparams["model"] = {**hparams["model"], "weights": None}
        task = cls(**hparams)
        task.load_state_dict(checkpoint["state_dict"])
        return task
