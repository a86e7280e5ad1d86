"""Evaluate a continual model in clip and continual mode:
``python -m cozoo.evaluate recipe=NAME weights=WEIGHTS [KEY=VALUE ...]``.

::

    python -m cozoo.evaluate recipe=cox3d_m weights=DEFAULT data.root=/data/kinetics400
    python -m cozoo.evaluate recipe=cox3d_m16 weights=/ckpts/x3d_m.pyth data.root=/data/k400
    python -m cozoo.evaluate recipe=cox3d_m ckpt_path=runs/cox3d_m/ID/checkpoints/last.ckpt
    python -m cozoo.evaluate recipe=cox3d_m weights=runs/cox3d_m/ID/checkpoints/last.ckpt
    python -m cozoo.evaluate recipe=costgcn_mod weights=stgcnmod_ntu60_xsub_joint.ckpt \
        bone_weights=stgcnmod_ntu60_xsub_bone.ckpt data.root=/data/ntu     # two streams

The protocol is the recipe's: one clip per video; the clip mode runs ``forward`` on the
protocol's clip, the continual mode cleans the state for every batch, warms up on the clip's own
leading steps (``delay`` of them) and predicts from the last step. Without ``data.root`` the
generated sample is read with the same ``sample`` settings as ``cozoo.train`` uses, so
``ckpt_path=<run>/checkpoints/last.ckpt`` reproduces the run's last validation exactly (a data
setting that differs from the one saved in the checkpoint is reported).

A weights *file* is compared with the published figures of the entry the recipe names
(``published.weights``); ``bone_weights=FILE`` evaluates the two-stream model (joint + bone logits
summed, on the ``joint_bone`` input) against the entry's two-stream figure.

The task renders the results table (also written to ``results_file``): the measured metrics
beside the published ones of the weights (``meta.published``), e.g. for classification::

    | model   | variant      | weights             | mode      | top-1 (%) | ... | published top-1 (%) | Δ     |
    | cox3d_m | pool_size=64 | CoX3D_M_Weights.... | continual | ...       | ... | 71.03               | ...   |
"""  # noqa: E501

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import hydra
import torch
from lightning.pytorch import LightningDataModule, seed_everything
from omegaconf import DictConfig, open_dict

from cozoo.co.logging import getLogger
from cozoo.recipes import register_resolvers
from cozoo.tasks import ContinualTask
from cozoo.tasks.results import ResultRow, weights_member
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

__all__ = ["EVALUATION_KEYS", "evaluate", "main"]

logger = getLogger(__name__)
register_resolvers()

#: Task settings an evaluation takes from the config even for a checkpoint (how to evaluate);
#: everything else (the network above all) comes from the checkpoint.
EVALUATION_KEYS = ("clip_eval", "continual_eval", "predict_steps", "clip_frames", "clip_align")


def _task_from_checkpoint(cfg: DictConfig, ckpt_path: str) -> ContinualTask:
    """The task saved in a ``cozoo.train`` checkpoint, evaluated as ``cfg.task`` says; the
    saved network is written into ``cfg.model`` (so the saved config says what ran)."""
    task_cls = hydra.utils.get_class(cfg.task._target_)
    evaluation = {key: cfg.task[key] for key in EVALUATION_KEYS if key in cfg.task}
    module = task_cls.from_checkpoint(ckpt_path, **evaluation)
    with open_dict(cfg):
        for key, value in module.hparams.model.items():
            cfg.model[key] = value
        cfg.task.input_key = module.hparams.input_key
    return module


def _build_module(cfg: DictConfig) -> Optional[ContinualTask]:
    """The task from ``ckpt_path``, or None (then ``cfg.task`` is instantiated, after
    ``num_classes`` is fixed for published weights)."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        return _task_from_checkpoint(cfg, str(ckpt_path))
    weights = cfg.get("weights")
    if weights is None:
        raise ValueError(
            "cozoo.evaluate needs weights=DEFAULT|NAME|PATH|URL or ckpt_path=PATH "
            "(a checkpoint written by cozoo.train)"
        )
    member = weights_member(cfg.model.name, weights)
    if member is not None:
        with open_dict(cfg):
            cfg.model.num_classes = int(member.meta.num_classes)
    bone = cfg.get("bone_weights")
    if bone:
        # The two-stream model: joint + bone logits, on the 6-channel joint_bone input.
        with open_dict(cfg):
            cfg.model.bone_weights = str(bone)
            cfg.data.modality = "joint_bone"
    return None


def _published_weights(cfg: DictConfig) -> Optional[str]:
    """The weights entry the recipe's published figures come from (``published.weights``)."""
    published = cfg.get("published")
    return None if published is None else published.get("weights")


def data_differences(ckpt_path: str, datamodule: LightningDataModule) -> Dict[str, Any]:
    """The data module's hyper-parameters that differ from those saved in a checkpoint
    (``{key: (saved, now)}``; empty when none were saved)."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    saved = checkpoint.get("datamodule_hyper_parameters") or {}
    now = dict(getattr(datamodule, "hparams", {}))
    return {k: (saved[k], now.get(k)) for k in saved if saved[k] != now.get(k)}


def evaluate(cfg: DictConfig) -> List[ResultRow]:
    """Evaluate the composed config; prints and returns the results table's rows."""
    run_dir = prepare_run_dir(cfg)
    seed_everything(cfg.seed, workers=True)
    module = _build_module(cfg)
    datamodule, module = build_datamodule_and_module(cfg, module)
    if hasattr(module, "published_weights") and not cfg.get("ckpt_path"):
        module.published_weights = _published_weights(cfg)
    logger.info("cozoo.evaluate %s: %s", cfg.name, describe_data(cfg))
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        differences = data_differences(str(ckpt_path), datamodule)
        if differences:
            logger.warning(
                "The data settings differ from those of the run that wrote %s (saved -> now): %s",
                ckpt_path,
                differences,
            )
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
    rows = module.results_rows(metrics, stage, ckpt_path)
    if trainer.is_global_zero:
        data = f"data.root={cfg.data.root}" if cfg.data.root else "the GENERATED SAMPLE"
        table = module.results_table(metrics, stage, ckpt_path)
        text = f"cozoo.evaluate {cfg.name} on {data} [{stage}]\n\n{table}\n"
        print(text, flush=True)
        if cfg.get("results_file"):
            path = Path(str(cfg.results_file))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return rows


@hydra.main(version_base="1.3", config_path="recipes", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    """The ``python -m cozoo.evaluate`` entry point."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
