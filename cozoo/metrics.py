"""Metrics of cozoo's tasks beyond torchmetrics' own: the per-frame mAP of online action
detection (:class:`PerFrameMAP`).

Per-frame mAP (THUMOS14, TVSeries): every scored frame (feature step) of every test video is
pooled; for each action class the frames are ranked by that class's score and the
non-interpolated average precision is taken; the mean over the action classes is the mAP::

    metric = PerFrameMAP(protocol="lstr")
    metric.update(logits, target)      # (N, 22) logits, (N, 22) one-hot targets
    metric.compute()                   # 0-dim tensor in [0, 1]
"""

from __future__ import annotations

import math
from typing import Any, Tuple

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["PROTOCOLS", "PerFrameMAP", "average_precision"]

#: The scoring protocols of :class:`PerFrameMAP`.
PROTOCOLS = ("lstr", "oadtr")


def average_precision(scores: Tensor, positives: Tensor, calibrated: bool = False) -> Tensor:
    """Non-interpolated average precision of one class.

    Frames are ranked by ``scores`` (descending); AP = sum over the distinct scores of (recall
    gained at that score) x (precision of all frames scoring at least that much). Tied scores
    thus count as one threshold, as ``sklearn.metrics.average_precision_score`` counts them;
    without ties this is the mean of the precision at each positive.

    Args:
        scores: ``(N,)`` float scores.
        positives: ``(N,)`` bool, True for the class's frames.
        calibrated: precision ``w·TP / (w·TP + FP)`` with ``w = #negatives / #positives``
            (the calibrated AP of TVSeries, De Geest et al., ECCV 2016).

    Returns:
        0-dim float64 tensor; NaN when there is no positive.
    """
    if scores.shape != positives.shape or scores.ndim != 1:
        raise ValueError(
            f"average_precision: expected scores and positives of one shape (N,), got "
            f"{tuple(scores.shape)} and {tuple(positives.shape)}"
        )
    positives = positives.bool()
    num_pos = int(positives.sum())
    if num_pos == 0:
        return torch.tensor(math.nan, dtype=torch.float64)
    order = torch.argsort(scores, descending=True, stable=True)
    ranked = scores[order]
    hits = positives[order].double()
    tp = torch.cumsum(hits, 0)
    fp = torch.cumsum(1.0 - hits, 0)
    # the last frame of each group of equal scores: a threshold
    last = torch.ones_like(ranked, dtype=torch.bool)
    last[:-1] = ranked[1:] != ranked[:-1]
    tp, fp = tp[last], fp[last]
    if calibrated:
        w = (scores.numel() - num_pos) / num_pos
        precision = w * tp / (w * tp + fp)
    else:
        precision = tp / (tp + fp)
    gained = torch.diff(tp, prepend=tp.new_zeros(1))
    return (gained * precision).sum() / num_pos


class PerFrameMAP(Metric):
    """Per-frame mean average precision of online action detection (THUMOS14: 22 columns =
    background, 20 actions, Ambiguous).

    ``protocol="lstr"`` (LSTR, TeSTra, MiniROAD): scores are the softmax over all ``num_classes``
    logits. ``protocol="oadtr"`` (OadTR, CoOadTR): the Ambiguous logit is discarded *before*
    the softmax. In both, frames whose truth is Ambiguous (argmax of the target row) are
    dropped, the AP (:func:`average_precision`) of every class but background and Ambiguous is
    taken (a frame is a positive of its target's argmax class), classes without a positive
    frame are skipped, and the mAP is their mean. Which frames are scored is the caller's
    choice: the OadTR-compatible evaluation updates only the steps of
    :func:`cozoo.data.thumos.evaluated_steps`.

    Scores are kept per frame in float32 (``(N, num_classes)``: 206k x 22 for THUMOS14 is 18
    MB); states are lists concatenated across processes, so the metric works under DDP.

    Args:
        protocol: ``"lstr"`` or ``"oadtr"``.
        num_classes: columns of the logits and targets (22).
        background, ambiguous: their column indices (0 and 21); ``ambiguous=None``: no
            Ambiguous class (all columns softmaxed, no frame dropped).
        calibrated: the calibrated AP (TVSeries' mcAP) instead of the plain AP.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        protocol: str = "lstr",
        num_classes: int = 22,
        background: int = 0,
        ambiguous: Any = 21,
        calibrated: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if protocol not in PROTOCOLS:
            raise ValueError(f"PerFrameMAP: protocol must be one of {PROTOCOLS}, got {protocol!r}")
        for name, index in (("background", background), ("ambiguous", ambiguous)):
            if index is not None and not 0 <= int(index) < num_classes:
                raise ValueError(
                    f"PerFrameMAP: {name} must be a column in [0, {num_classes}), got {index}"
                )
        self.protocol = protocol
        self.num_classes = int(num_classes)
        self.background = int(background)
        self.ambiguous = None if ambiguous is None else int(ambiguous)
        self.calibrated = bool(calibrated)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Add frames: ``logits`` ``(N, num_classes)``, ``target`` ``(N, num_classes)`` one-hot
        or soft (its argmax is the frame's class)."""
        if logits.ndim != 2 or logits.shape[1] != self.num_classes or target.shape != logits.shape:
            raise ValueError(
                f"PerFrameMAP.update: expected logits and target (N, {self.num_classes}), got "
                f"{tuple(logits.shape)} and {tuple(target.shape)}"
            )
        labels = target.argmax(dim=1)
        logits = logits.detach().float()
        if self.ambiguous is not None:
            keep = labels != self.ambiguous
            logits, labels = logits[keep], labels[keep]
            if self.protocol == "oadtr":
                logits = torch.cat(
                    [logits[:, : self.ambiguous], logits[:, self.ambiguous + 1 :]], dim=1
                )
                scores = torch.softmax(logits, dim=1)
                # back to num_classes columns: the Ambiguous column is never scored
                scores = torch.cat(
                    [
                        scores[:, : self.ambiguous],
                        scores.new_zeros(len(scores), 1),
                        scores[:, self.ambiguous :],
                    ],
                    dim=1,
                )
            else:
                scores = torch.softmax(logits, dim=1)
        else:
            scores = torch.softmax(logits, dim=1)
        self.scores.append(scores)
        self.labels.append(labels.to(torch.int64))

    def _gathered(self) -> Tuple[Tensor, Tensor]:
        if isinstance(self.scores, Tensor):  # already concatenated by a sync
            return self.scores, self.labels
        if not self.scores:
            return torch.zeros(0, self.num_classes), torch.zeros(0, dtype=torch.int64)
        return dim_zero_cat(self.scores), dim_zero_cat(self.labels)

    def per_class(self) -> Tensor:
        """``(num_classes,)`` float64: the AP of each class over the frames of every process;
        NaN for background, Ambiguous and classes without a positive frame."""
        if self._is_synced:
            return self._per_class()
        with self.sync_context():
            return self._per_class()

    def _per_class(self) -> Tensor:
        scores, labels = self._gathered()
        out = torch.full((self.num_classes,), math.nan, dtype=torch.float64)
        for c in range(self.num_classes):
            if c in (self.background, self.ambiguous):
                continue
            out[c] = average_precision(scores[:, c].cpu(), (labels == c).cpu(), self.calibrated)
        return out

    def compute(self) -> Tensor:
        """The mAP: mean AP over the scored classes; 0-dim float32 tensor, NaN when no class has
        a positive frame."""
        ap = self._per_class()
        scored = ap[~torch.isnan(ap)]
        value = scored.mean() if len(scored) else torch.tensor(math.nan, dtype=torch.float64)
        return value.float()
