"""Evaluate a video classifier in clip and continual mode:
``python -m cozoo.evaluate recipe=NAME weights=WEIGHTS [KEY=VALUE ...]``.

::

    python -m cozoo.evaluate recipe=cox3d_m weights=DEFAULT data.root=/data/kinetics400
    python -m cozoo.evaluate recipe=cox3d_m16 weights=/ckpts/x3d_m.pyth data.root=/data/k400
    python -m cozoo.evaluate recipe=cox3d_m ckpt_path=runs/cox3d_m/ID/checkpoints/last.ckpt

The protocol is the recipe's (spec video-models.md §5): one clip per video (1-clip / 1-crop);
the clip mode runs ``forward`` on the protocol's clip, the continual mode cleans the state for
every batch, warms up on the clip's own leading frames (``delay`` of them) and predicts from
the last frame. The printed table (also written to ``results_file``) puts the measured
accuracies beside the published one of the weights (``meta["published"]``)::

    | model   | P  | weights             | mode      | top-1 | top-5 | published top-1 | Δ top-1 |
    | cox3d_m | 64 | CoX3D_M_Weights.... | clip      | ...   | ...   | –               | –       |
    | cox3d_m | 64 | CoX3D_M_Weights.... | continual | ...   | ...   | 71.03           | ...     |

(and the continual steps/s). The published number is the continual (1 clip / 1 frame) top-1
of the weights at the recipe's pool size P; nothing is published for the clip mode of a
continual model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional

import hydra
from lightning.pytorch import seed_everything
from omegaconf import DictConfig, open_dict

from cozoo.co.logging import getLogger
from cozoo.models import get_model_weights
from cozoo.recipes import register_resolvers
from cozoo.tasks import MODES, VideoClassifier
from cozoo.train import (
    build_callbacks,
    build_datamodule_and_module,
    build_loggers,
    build_trainer,
    describe_data,
    metrics_as_floats,
    prepare_run_dir,
    save_resolved_config,
)

__all__ = ["Result", "evaluate", "format_table", "main", "published_top1", "weights_label"]

logger = getLogger(__name__)
register_resolvers()


@dataclass
class Result:
    """One row of the results table (accuracies in %)."""

    model: str
    pool_size: Optional[int]
    weights: str
    mode: str
    top1: Optional[float]
    top5: Optional[float]
    published_top1: Optional[float]
    steps_per_s: Optional[float] = None

    @property
    def delta(self) -> Optional[float]:
        """Measured minus published top-1 (percentage points)."""
        if self.top1 is None or self.published_top1 is None:
            return None
        return self.top1 - self.published_top1


def _weights_member(arch: str, weights: Any) -> Any:
    """The weights enum member that ``weights`` names for ``arch`` (None: not a member)."""
    enum = get_model_weights(arch)
    if enum is None or not isinstance(weights, str) or not enum.is_member_name(weights):
        return None
    return enum.verify(weights)


def published_top1(arch: str, weights: Any, pool_size: Optional[int]) -> Optional[float]:
    """The published continual top-1 (%) of ``weights`` (a member of the model's weights enum,
    its name or ``"DEFAULT"``) at pool size ``pool_size``; None where nothing is published."""
    member = _weights_member(arch, weights)
    if member is None or pool_size is None:
        return None
    result = member.meta.find("top-1 accuracy", pool_size=int(pool_size))
    return None if result is None else float(result.value)


def weights_label(arch: str, weights: Any, ckpt_path: Optional[str]) -> str:
    """How the evaluated parameters are named in the table."""
    if ckpt_path:
        return os.fspath(ckpt_path)
    member = _weights_member(arch, weights)
    if member is not None:
        return repr(member)
    return "random init" if weights is None else str(weights)


def _fmt(value: Optional[float], digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def format_table(results: List[Result]) -> str:
    """The results as a Markdown table."""
    head = [
        "model",
        "P",
        "weights",
        "mode",
        "top-1 (%)",
        "top-5 (%)",
        "published top-1 (%)",
        "Δ top-1",
        "steps/s",
    ]
    rows = [
        [
            r.model,
            "–" if r.pool_size is None else str(r.pool_size),
            r.weights,
            r.mode,
            _fmt(r.top1),
            _fmt(r.top5),
            _fmt(r.published_top1),
            _fmt(r.delta, signed=True),
            _fmt(r.steps_per_s, 1),
        ]
        for r in results
    ]
    widths = [max(len(x) for x in column) for column in zip(head, *rows)]

    def line(cells: List[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule] + [line(r) for r in rows])


def results_from_metrics(
    metrics: Mapping[str, float],
    stage: str,
    module: VideoClassifier,
    weights: Any,
    ckpt_path: Optional[str],
) -> List[Result]:
    """Table rows from the logged metrics (``{stage}/{mode}/top1`` ..., fractions -> %)."""
    arch = module.hparams.arch
    pool = getattr(module.model, "pool_size", module.hparams.pool_size)
    label = weights_label(arch, weights, ckpt_path)
    published = published_top1(arch, weights, pool) if not ckpt_path else None
    top5_key = f"top{min(5, module.hparams.num_classes)}"
    rows = []
    for mode in MODES:
        if mode not in module.modes:
            continue

        def pct(key: str, mode: str = mode) -> Optional[float]:
            value = metrics.get(f"{stage}/{mode}/{key}")
            return None if value is None else 100.0 * float(value)

        rows.append(
            Result(
                model=arch,
                pool_size=pool,
                weights=label,
                mode=mode,
                top1=pct("top1"),
                top5=pct(top5_key),
                published_top1=published if mode == "continual" else None,
                steps_per_s=metrics.get(f"{stage}/continual/steps_per_s")
                if mode == "continual"
                else None,
            )
        )
    return rows


def _build_module(cfg: DictConfig) -> Optional[VideoClassifier]:
    """The module from ``ckpt_path``, or None (then ``cfg.model`` is instantiated, after
    ``num_classes`` is fixed for published weights)."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        evaluation = {
            key: cfg.model[key]
            for key in ("clip_eval", "continual_eval", "predict_steps", "clip_frames", "clip_align")
        }
        module = VideoClassifier.from_checkpoint(ckpt_path, **evaluation)
        with open_dict(cfg):
            for key in ("arch", "num_classes", "pool_size", "temporal_fill"):
                cfg.model[key] = module.hparams[key]
        return module
    weights = cfg.get("weights")
    if weights is None:
        raise ValueError(
            "cozoo.evaluate needs weights=DEFAULT|NAME|PATH|URL or ckpt_path=PATH "
            "(a checkpoint written by cozoo.train)"
        )
    member = _weights_member(cfg.model.arch, weights)
    if member is not None:
        with open_dict(cfg):
            cfg.model.num_classes = int(member.meta.num_classes)
    return None


def evaluate(cfg: DictConfig) -> List[Result]:
    """Evaluate the composed config; prints and returns the results table."""
    run_dir = prepare_run_dir(cfg)
    seed_everything(cfg.seed, workers=True)
    module = _build_module(cfg)
    datamodule, module = build_datamodule_and_module(cfg, module)
    logger.info("cozoo.evaluate %s: %s", cfg.name, describe_data(cfg))
    save_resolved_config(cfg, run_dir / "config.yaml")
    trainer = build_trainer(cfg, build_loggers(cfg), build_callbacks(cfg))
    stage = cfg.get("split", "val")
    if stage == "val":
        trainer.validate(module, datamodule=datamodule)
    elif stage == "test":
        trainer.test(module, datamodule=datamodule)
    else:
        raise ValueError(f"split must be 'val' or 'test', got {stage!r}")
    metrics = metrics_as_floats(trainer.callback_metrics)
    results = results_from_metrics(metrics, stage, module, cfg.get("weights"), cfg.get("ckpt_path"))
    if trainer.is_global_zero:
        data = f"data.root={cfg.data.root}" if cfg.data.root else "the GENERATED SAMPLE"
        table = format_table(results)
        text = f"cozoo.evaluate {cfg.name} on {data} [{stage}]\n\n{table}\n"
        print(text, flush=True)
        if cfg.get("results_file"):
            path = Path(str(cfg.results_file))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return results


@hydra.main(version_base="1.3", config_path="recipes", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """The ``python -m cozoo.evaluate`` entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
