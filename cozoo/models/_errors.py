"""The errors of fetching, reading and loading weights."""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "StateDictMismatchError",
    "UnpinnedChecksumWarning",
    "UnsafeCheckpointError",
    "WeightsError",
]


class WeightsError(RuntimeError):
    """A checkpoint could not be fetched, read or loaded."""


class ChecksumError(WeightsError):
    """A file's sha256 differs from the pinned one."""


class UnsafeCheckpointError(WeightsError):
    """A checkpoint holds objects other than tensors, arrays and plain containers."""


class StateDictMismatchError(WeightsError):
    """The (converted) checkpoint's keys or shapes differ from the model's state dict."""


class UnpinnedChecksumWarning(UserWarning):
    """A download was accepted without a pinned sha256; the message carries the computed one."""
