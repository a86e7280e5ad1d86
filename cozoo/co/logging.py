"""Rank-zero logging: ``co.logging.getLogger(name, log_once=False)``.

In multi-process training (torch.distributed, Lightning, SLURM, Horovod, MPI) every process
runs the same code; the loggers returned here emit only on the process with global rank 0, so
a warning is printed once rather than once per GPU. With ``log_once=True`` a message that was
already emitted (same level, same text) is suppressed afterwards::

    logger = co.logging.getLogger(__name__, log_once=True)
    for _ in range(3):
        logger.warning("unaligned branches")   # printed once, on rank 0 only

The rank is read on every call: ``torch.distributed.get_rank()`` once a process group is
initialised, otherwise the first of the environment variables ``RANK``, ``SLURM_PROCID``,
``OMPI_COMM_WORLD_RANK``, ``PMI_RANK``, ``HOROVOD_RANK``, ``JSM_NAMESPACE_RANK`` and
``LOCAL_RANK`` that holds an integer (the ones torchrun, Lightning, SLURM and the MPI
launchers set), else 0.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, MutableMapping, Set, Tuple

import torch

__all__ = ["RankZeroLogger", "getLogger", "global_rank"]

RANK_ENV_VARS: Tuple[str, ...] = (
    "RANK",
    "SLURM_PROCID",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "HOROVOD_RANK",
    "JSM_NAMESPACE_RANK",
    "LOCAL_RANK",
)


def global_rank() -> int:
    """The global rank of this process (0 outside distributed runs)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for key in RANK_ENV_VARS:
        value = os.environ.get(key, "").strip()
        if value.lstrip("-").isdigit():
            return int(value)
    return 0


class RankZeroLogger(logging.LoggerAdapter):
    """A ``logging.LoggerAdapter`` that emits only on global rank 0, optionally once per
    message.

    All ``Logger`` methods work (``debug`` ... ``critical``, ``exception``, ``log``,
    ``setLevel``, ``isEnabledFor``); other attributes (``handlers``, ``addHandler``, ...) are
    read from the wrapped ``logging.Logger``. Records name the caller's file and line.
    """

    def __init__(self, logger: logging.Logger, log_once: bool = False):
        super().__init__(logger, {})
        self.log_once = log_once
        self._seen: Set[Tuple[int, str]] = set()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name == "logger":  # not yet set (e.g. during unpickling): avoid recursion
            raise AttributeError(name)
        return getattr(self.logger, name)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> Tuple[Any, Any]:
        return msg, kwargs

    def _first_time(self, level: int, msg: Any, args: tuple) -> bool:
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError, KeyError):
                text = f"{text} {args!r}"
        key = (level, text)
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if global_rank() != 0 or not self.isEnabledFor(level):
            return
        if self.log_once and not self._first_time(level, msg, args):
            return
        # one extra frame (this method) between the caller and logging: skip it so that
        # records carry the caller's file and line
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        super().log(level, msg, *args, **kwargs)

    def reset_once(self) -> None:
        """Forget the messages seen so far (``log_once``): they are emitted again."""
        with self._lock:
            self._seen.clear()


_loggers: Dict[Tuple[str, bool], RankZeroLogger] = {}
_loggers_lock = threading.Lock()


def getLogger(name: str, log_once: bool = False) -> RankZeroLogger:  # noqa: N802 - stdlib name
    """A logger named ``name`` that logs on global rank 0 only.

    With ``log_once=True`` repeats of an identical message (same level and text) are dropped.
    Calls with the same ``name`` and ``log_once`` return the same object (shared memory of the
    messages seen); the underlying ``logging.getLogger(name)`` is shared with the stdlib, so
    levels and handlers configured there apply.
    """
    key = (name, bool(log_once))
    with _loggers_lock:
        logger = _loggers.get(key)
        if logger is None:
            logger = _loggers[key] = RankZeroLogger(logging.getLogger(name), log_once=log_once)
        return logger
