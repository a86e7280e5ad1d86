"""Train a continual video classifier: ``python -m cozoo.train recipe=NAME [KEY=VALUE ...]``.

The config tree is ``cozoo/recipes`` (Hydra; shipped in the package)::

    python -m cozoo.train recipe=cox3d_m                        # generated sample, CPU, minutes
    python -m cozoo.train recipe=cox3d_m data.root=/data/k400   # the published protocol
    python -m cozoo.train recipe=cox3d_m run_id=ID ckpt_path=last        # resume run ID
    python -m cozoo.train recipe=cox3d_m trainer.strategy=ddp trainer.devices=2
    python -m cozoo.train recipe=cox3d_m logger=[csv,tensorboard]        # or logger=wandb
    python -m cozoo.train recipe=cox3d_m --cfg job --resolve             # print the config

Everything a run writes lives in one folder, ``run_dir`` (default
``runs/<recipe>/<run_id>``): ``.hydra/`` (the composed config and the overrides),
``config.yaml`` (resolved, with what was filled in at run time), ``checkpoints/``
(``last.ckpt`` and the best one, written atomically), ``csv/metrics.csv`` (or the chosen
loggers' folders) and ``train.log``. Resuming the same ``run_id`` with ``ckpt_path=last``
continues in that folder with the same logger runs (the CSV and TensorBoard logs drop what the
interrupted run logged after its checkpoint; W&B resumes the same run id).

Resume semantics. ``checkpoints/last.ckpt`` is rewritten after every epoch (and every N steps
with ``callbacks.checkpoint.every_n_train_steps=N``); a run killed at any point resumes from
it. Checkpoints carry the RNG states, so a run resumed from an epoch-end checkpoint ends with
bit-identical weights and logs to an uninterrupted run with the same seed (tested). A resume
from a *mid-epoch* checkpoint is not bit-identical: the data loader is not resumable, so
Lightning restarts the epoch's iterator from a new shuffle and only stops it after the
remaining number of batches (it warns about this); the epoch's remaining samples and the
dropout masks then differ from the uninterrupted run's.

``train(cfg)`` is the same thing for an already composed config (tests, notebooks).
"""

from __future__ import annotations

import os

# Before torch loads OpenMP (libgomp reads it once, at load): threads waiting for work sleep
# instead of spinning. On a 2-core machine whose cores are also busy (the data loader workers,
# any other process) spinning threads made training steps 10-40x slower. Sleeping threads wake
# slowly for streams of small ops: a batch-1 CoX3D-S step at 2 threads took 32.6 instead of
# 12.7 ms on an idle machine, which the continual validation pays. A value set in the
# environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import hydra
import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from cozoo.callbacks import AtomicCheckpointIO
from cozoo.co.logging import getLogger
from cozoo.recipes import register_resolvers
from cozoo.tasks import ContinualTask

__all__ = [
    "PURGING_LOGGERS",
    "build_callbacks",
    "build_datamodule_and_module",
    "build_loggers",
    "build_trainer",
    "main",
    "prepare_run_dir",
    "resume_checkpoint",
    "train",
]

logger = getLogger(__name__)
register_resolvers()


# --------------------------------------------------------------------------------------------
# Building blocks (shared with cozoo.evaluate)
# --------------------------------------------------------------------------------------------
def prepare_run_dir(cfg: DictConfig) -> Path:
    """Fix ``cfg.run_dir`` to one absolute folder and create it.

    Under ``@hydra.main`` the run folder is Hydra's output folder: the DDP launcher re-runs
    this script once per extra process with ``hydra.run.dir=<that folder>``, so every process
    agrees on it even though ``run_id`` (a timestamp) would differ between them.
    """
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        run_dir = HydraConfig.get().runtime.output_dir
    else:
        run_dir = cfg.run_dir
    run_dir = os.path.abspath(os.path.expanduser(str(run_dir)))
    with open_dict(cfg):
        cfg.run_dir = run_dir
    os.makedirs(run_dir, exist_ok=True)
    return Path(run_dir)


def _data_fact(datamodule: LightningDataModule, name: str, key: str) -> Any:
    """``name`` of a data module (its ``num_classes``, ``input_key``), read after
    ``prepare_data`` if needed."""
    value = getattr(datamodule, name, None)
    if value is None:
        datamodule.prepare_data()
        value = getattr(datamodule, name, None)
    if value is None:
        raise ValueError(f"{type(datamodule).__name__} does not tell its {name}; set {key}")
    return value


def build_datamodule_and_module(
    cfg: DictConfig, module: Optional[ContinualTask] = None
) -> Tuple[LightningDataModule, ContinualTask]:
    """Instantiate ``cfg.data`` and ``cfg.task`` (unless ``module`` is given).

    Filled in here and written back into ``cfg`` so that the saved config says what ran:
    ``model.num_classes`` and ``model.feature_dim`` (null: the data module's),
    ``task.input_key`` (null: the data module's), ``data.continual_frames`` (null: the
    task's ``delay + predict_steps``, the time steps a clip needs for the continual mode).
    """
    datamodule: Optional[LightningDataModule] = None
    if module is None:
        needs_data = (
            cfg.model.get("num_classes", 0) is None
            or cfg.model.get("feature_dim", 0) is None
            or cfg.task.get("input_key") is None
        )
        if needs_data:
            datamodule = hydra.utils.instantiate(cfg.data)
        with open_dict(cfg):
            if cfg.model.get("num_classes", 0) is None:
                cfg.model.num_classes = int(
                    _data_fact(datamodule, "num_classes", "model.num_classes")
                )
            if cfg.model.get("feature_dim", 0) is None:
                cfg.model.feature_dim = int(
                    _data_fact(datamodule, "feature_dim", "model.feature_dim")
                )
            if cfg.task.get("input_key") is None:
                cfg.task.input_key = str(_data_fact(datamodule, "input_key", "task.input_key"))
        module = hydra.utils.instantiate(cfg.task, _convert_="all")
    if (
        "continual_frames" in cfg.data
        and cfg.data.continual_frames is None
        and ("continual" in module.modes)
    ):
        with open_dict(cfg):
            cfg.data.continual_frames = max(module.required_frames(), int(cfg.data.frames))
        datamodule = None
    if datamodule is None:
        datamodule = hydra.utils.instantiate(cfg.data)
    return datamodule, module


#: Loggers that accept ``purge_step`` (drop what was logged after the resumed checkpoint).
PURGING_LOGGERS = (
    "cozoo.callbacks.ResumableCSVLogger",
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger",
)


def build_loggers(cfg: DictConfig, purge_step: Optional[int] = None) -> List[Logger]:
    """The loggers of ``cfg.logger`` (a dict name -> instantiable config; empty: none).

    ``purge_step``: a resumed run's first logging step; the CSV and TensorBoard loggers drop
    what the interrupted run logged from that step on (it is logged again)."""
    loggers: List[Logger] = []
    for name, conf in (cfg.get("logger") or {}).items():
        if conf is None:
            continue
        if "_target_" not in conf:
            raise ValueError(f"logger.{name} has no _target_")
        extra = (
            {"purge_step": purge_step} if purge_step and conf._target_ in PURGING_LOGGERS else {}
        )
        loggers.append(hydra.utils.instantiate(conf, **extra))
    return loggers


def resume_checkpoint(cfg: DictConfig, run_dir: Path) -> Tuple[Optional[str], Optional[int]]:
    """``cfg.ckpt_path`` as a path (``last``: ``run_dir/checkpoints/last.ckpt`` if it exists)
    and the logging step the run resumes at (None: a fresh run)."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        for stale in (run_dir / "checkpoints").glob(".tmp-*.ckpt"):
            logger.info("Removing %s, left by a run killed while saving", stale)
            stale.unlink(missing_ok=True)  # a save cut short; the checkpoints are intact
    if ckpt_path == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.is_file():
            logger.warning(
                "ckpt_path=last: no %s yet, so training starts from scratch (resume a run by "
                "naming it: run_id=ID or run_dir=DIR)",
                last,
            )
            return None, None
        ckpt_path = str(last)
    if not ckpt_path:
        return None, None
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    step = loops.get("epoch_loop.state_dict", {}).get("_batches_that_stepped")
    logger.info("Resuming %s from %s (step %s)", run_dir, ckpt_path, step)
    return str(ckpt_path), None if step is None else int(step)


def build_callbacks(cfg: DictConfig) -> List[Callback]:
    """The callbacks of ``cfg.callbacks``; progress bars are dropped when the trainer has
    ``enable_progress_bar=false``."""
    callbacks: List[Callback] = []
    bar_enabled = bool(cfg.trainer.get("enable_progress_bar", True))
    for name, conf in (cfg.get("callbacks") or {}).items():
        if conf is None:
            continue
        if "_target_" not in conf:
            raise ValueError(f"callbacks.{name} has no _target_")
        callback = hydra.utils.instantiate(conf)
        if isinstance(callback, ProgressBar) and not bar_enabled:
            continue
        callbacks.append(callback)
    return callbacks


def build_trainer(cfg: DictConfig, loggers: List[Logger], callbacks: List[Callback]) -> Trainer:
    """``cfg.trainer`` with the loggers, the callbacks and the atomic checkpoint IO."""
    return hydra.utils.instantiate(
        cfg.trainer,
        logger=loggers if loggers else False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        _convert_="all",
    )


_DATA_PLUMBING = ("_target_", "root", "cache_dir", "num_workers", "seed")


def describe_data(cfg: DictConfig) -> str:
    """One line saying which data and input protocol a run uses (the data config's values)."""
    d = OmegaConf.to_container(cfg.data, resolve=True)
    what = f"data.root={d['root']}" if d.get("root") else "the GENERATED SAMPLE (no data.root)"
    settings = ", ".join(f"{k}={v}" for k, v in d.items() if k not in _DATA_PLUMBING)
    return f"{what}: {settings}"


def metrics_as_floats(metrics: Dict[str, Any]) -> Dict[str, float]:
    """``trainer.callback_metrics`` (tensors) as plain floats."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, torch.Tensor))}


def save_resolved_config(cfg: DictConfig, path: Path) -> None:
    """Write the resolved config (rank 0 only)."""
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0:
        path.write_text(OmegaConf.to_yaml(cfg, resolve=True))


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def train(cfg: DictConfig, extra_callbacks: Sequence[Callback] = ()) -> Dict[str, float]:
    """Fit (and optionally test) the composed config; returns the final metrics as floats.

    ``extra_callbacks`` are added to those of ``cfg.callbacks`` (e.g. from a notebook).
    """
    run_dir = prepare_run_dir(cfg)
    seed_everything(cfg.seed, workers=True)
    datamodule, module = build_datamodule_and_module(cfg)
    logger.info("cozoo.train %s: %s", cfg.name, describe_data(cfg))
    if not cfg.data.root:
        logger.warning(
            "No data.root given: training on the generated sample with the small settings of "
            "`sample` (config group sample/ and the recipe's `sample` section). Pass "
            "data.root=/path/to/the/dataset for the published protocol."
        )
    save_resolved_config(cfg, run_dir / "config.yaml")
    ckpt_path, resume_step = resume_checkpoint(cfg, run_dir)
    loggers = build_loggers(cfg, purge_step=resume_step)
    callbacks = build_callbacks(cfg) + list(extra_callbacks)
    trainer = build_trainer(cfg, loggers, callbacks)
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = metrics_as_floats(trainer.callback_metrics)
    if cfg.get("test"):
        trainer.test(module, datamodule=datamodule, ckpt_path=_best_checkpoint(trainer))
        metrics.update(metrics_as_floats(trainer.callback_metrics))
    metrics["wall_s"] = time.perf_counter() - start
    if trainer.is_global_zero:
        _report(cfg, metrics, run_dir)
    return metrics


def _best_checkpoint(trainer: Trainer) -> Optional[str]:
    """The best checkpoint of a ``ModelCheckpoint`` that monitors a metric (None: none)."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor and callback.best_model_path:
            return callback.best_model_path
    return None


def _report(cfg: DictConfig, metrics: Dict[str, float], run_dir: Path) -> None:
    shown = {k: v for k, v in sorted(metrics.items()) if "/" in k and "step" not in k}
    lines = [f"cozoo.train {cfg.name} finished in {metrics['wall_s']:.0f} s ({run_dir})"]
    lines += [f"  {k:<28} {v:.4f}" for k, v in shown.items()]
    lines.append(
        f"  resume: python -m cozoo.train recipe={cfg.name} run_dir={run_dir} ckpt_path=last"
    )
    print("\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path="recipes", config_name="train")
def main(cfg: DictConfig) -> None:
    """The ``python -m cozoo.train`` entry point."""
    train(cfg)


if __name__ == "__main__":
    main()
