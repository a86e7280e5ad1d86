"""Lightning plugins and callbacks of the cozoo research framework.

- ``AtomicCheckpointIO``: checkpoints are written to a temporary file beside the target, flushed
  to disk and renamed over it with ``os.replace``; a run killed while saving leaves the previous
  checkpoint intact, never a truncated one. Checkpoints are read with
  ``torch.load(weights_only=True)``: nothing in a checkpoint can run code.
- ``ResumableCSVLogger``: Lightning's ``CSVLogger``, except that a resumed run appends to the
  run's ``metrics.csv`` (Lightning's deletes it) after dropping the rows logged after the
  checkpoint it resumes from (``purge_step``, as TensorBoard's ``SummaryWriter`` does).
- ``ThroughputProgressBar``: Lightning's tqdm bar with the throughput that matters per mode:
  ``clips/s`` while training (clip mode) and ``steps/s`` (frames through ``forward_step``) while
  a task (``cozoo.tasks.ContinualTask``) evaluates in continual mode.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.plugins.io import CheckpointIO

__all__ = ["AtomicCheckpointIO", "ResumableCSVLogger", "ThroughputProgressBar"]

PathLike = Union[str, os.PathLike]


class AtomicCheckpointIO(CheckpointIO):
    """Save checkpoints atomically (temp file in the same folder + ``os.replace``) and load them
    with ``torch.load(weights_only=True)``.

    The temporary file lives in the target's folder so that the rename never crosses a file
    system; it is fsync'ed before the rename, and the folder after it, so that a power loss
    cannot leave a renamed-but-empty file behind. A failed save removes its temporary file.
    """

    def save_checkpoint(
        self, checkpoint: Dict[str, Any], path: PathLike, storage_options: Optional[Any] = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ckpt", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; a checkpoint is a file
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_dir(folder)

    def load_checkpoint(
        self,
        path: PathLike,
        map_location: Optional[Union[Callable, str, torch.device]] = None,
        weights_only: Optional[bool] = True,
    ) -> Dict[str, Any]:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        if map_location is None:
            map_location = "cpu"
        return torch.load(path, map_location=map_location, weights_only=True)

    def remove_checkpoint(self, path: PathLike) -> None:
        if os.path.isfile(path):
            os.remove(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV experiment writer that keeps an existing ``metrics.csv`` (its rows with
    ``step < purge_step``) and appends to it."""

    def __init__(self, log_dir: str, purge_step: Optional[int] = None) -> None:
        self._purge_step = purge_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            keys: List[str] = list(reader.fieldnames or [])
            rows = [row for row in reader if _keep(row, self._purge_step)]
        with open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = sorted(keys)


def _keep(row: Dict[str, str], purge_step: Optional[int]) -> bool:
    if purge_step is None:
        return True
    try:
        return int(float(row.get("step") or 0)) < purge_step
    except ValueError:
        return True


class ResumableCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` that continues a run's ``metrics.csv``.

    Args:
        save_dir, name, version, prefix, flush_logs_every_n_steps: as ``CSVLogger``.
        purge_step: rows of an existing ``metrics.csv`` with ``step >= purge_step`` are
            dropped before appending (a resumed run logs them again); None keeps every row.
    """

    def __init__(
        self,
        save_dir: str,
        name: Optional[str] = "lightning_logs",
        version: Optional[Union[int, str]] = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
        purge_step: Optional[int] = None,
    ):
        super().__init__(
            save_dir,
            name=name,
            version=version,
            prefix=prefix,
            flush_logs_every_n_steps=flush_logs_every_n_steps,
        )
        self._purge_step = purge_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self._purge_step)
        return self._experiment


class ThroughputProgressBar(TQDMProgressBar):
    """The tqdm progress bar plus throughput: ``clips/s`` in training, ``steps/s`` in continual
    evaluation.

    Training throughput counts the clips of every batch over the wall time of the epoch so far
    (data loading included, as a user waits for it). The continual figure is read from the
    module's ``continual_throughput()`` (``ContinualTask`` times its ``forward_step`` loop
    alone), so it is the streaming speed of the model: frames × streams per second.
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False):
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self._epoch_start: Optional[float] = None
        self._clips = 0

    def on_train_epoch_start(self, trainer: Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._epoch_start = time.perf_counter()
        self._clips = 0

    def on_train_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._clips += _batch_size(batch)
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> Dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        if self._epoch_start is not None and self._clips:
            elapsed = max(time.perf_counter() - self._epoch_start, 1e-9)
            metrics["clips/s"] = f"{self._clips / elapsed:.1f}"
        return metrics

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        super().on_validation_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not trainer.sanity_checking:
            self._show_steps(self.val_progress_bar, pl_module)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        super().on_test_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self._show_steps(self.test_progress_bar, pl_module)

    @staticmethod
    def _show_steps(bar: Any, pl_module: LightningModule) -> None:
        rate = getattr(pl_module, "continual_throughput", lambda: None)()
        if bar is not None and not bar.disable and rate is not None:
            bar.set_postfix({"steps/s": f"{rate:.1f}"})


def _batch_size(batch: Any) -> int:
    """Clips in a batch: the first dim of its labels (``batch["label"]``, any input kind), of a
    tensor batch, or of a list of tensors' first."""
    if isinstance(batch, dict) and isinstance(batch.get("label"), torch.Tensor):
        return int(batch["label"].shape[0])
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return int(batch[0].shape[0])
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return 0
