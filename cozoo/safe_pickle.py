"""Reading pickles that may come from anyone: numpy arrays and plain containers, nothing else.

Checkpoints of older code bases (Caffe2/Detectron ``.pkl`` weights) and dataset files (NTU label
pickles, pyskl annotation pickles, THUMOS feature pickles) are pickles of dicts, lists, strings,
numbers and numpy arrays. A plain ``pickle.load`` of such a file can run any code the file names;
:func:`load` reconstructs only those types and refuses every other global, so no function is
called and no class is instantiated::

    data = safe_pickle.load("I3D_8x8_R50.pkl")      # Python-2 pickles too (strings as latin-1)
"""

from __future__ import annotations

import importlib
import os
import pickle
from typing import IO, Any, Callable, Dict, Tuple, Union

__all__ = ["UnsafePickleError", "load", "loads"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global other than numpy's array and scalar constructors."""


def _numpy_attr(module: str, name: str) -> Callable[[], Any]:
    """A lazy lookup of ``numpy.<module>.<name>``, preferring numpy 2's ``numpy._core`` over
    the deprecated ``numpy.core`` alias that Python-2 era pickles name."""

    def resolve() -> Any:
        for candidate in (f"numpy._core.{module}", f"numpy.core.{module}"):
            try:
                return getattr(importlib.import_module(candidate), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"numpy provides no {module}.{name}")

    return resolve


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as pickle protocol 2 uses it for bytes, limited to latin-1."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"refused _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _numpy_module_attr(name: str) -> Callable[[], Any]:
    return lambda: getattr(importlib.import_module("numpy"), name)


_ALLOWED_GLOBALS: Dict[Tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_attr("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_attr("multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): _numpy_attr("multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): _numpy_attr("multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"): _numpy_attr("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): _numpy_attr("numeric", "_frombuffer"),
    ("numpy", "ndarray"): _numpy_module_attr("ndarray"),
    ("numpy", "dtype"): _numpy_module_attr("dtype"),
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Reconstructs plain containers, strings, numbers and numpy arrays/scalars; refuses any
    other global (so no function can be called and no class instantiated)."""

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise UnsafePickleError(
                f"refused to unpickle global {module}.{name}: only numpy arrays, numpy scalars "
                "and plain containers are allowed"
            )
        return resolve()

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refused persistent id {pid!r}")


def loads(data: bytes) -> Any:
    """Unpickle ``data`` with the numpy-only unpickler (Python-2 strings read as latin-1)."""
    import io

    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def load(source: Union[str, os.PathLike, IO[bytes]]) -> Any:
    """Unpickle a file (path or binary file object) with the numpy-only unpickler.

    Raises ``UnsafePickleError`` (naming the file) on any global but numpy's array and scalar
    constructors; other failures (a damaged file) raise what ``pickle`` raises."""
    if hasattr(source, "read"):
        return _NumpyOnlyUnpickler(source, encoding="latin1").load()  # type: ignore[arg-type]
    with open(source, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except UnsafePickleError as error:
            raise UnsafePickleError(f"Refused to load {os.fspath(source)}: {error}") from None
