"""Checkpoint key layouts of CoOadTR, converted to cozoo's by renaming keys (strictly: an
unknown or missing key is an error that lists them).

- ``"continual_transformers"``: the original code (CoOadTR with ``continual-inference`` and
  ``continual-transformers`` layers), a ``co.Sequential`` indexed 0-5::

      0.weight                                  embedding.weight
      1.pe.weight | 1.pe.pattern                position.pe.weight | position.pe.pattern
      b1: 3.0.1.in_proj_weight                  encoder.0.self_attn.in_proj_weight
          3.0.1.out_proj.weight                 encoder.0.self_attn.out_proj.weight
          3.1.fn.{weight,bias}                  encoder.0.norm1.*
          3.2.<i>.0.* / 3.2.<i>.3.*             encoder.0.linear1.* / linear2.*   (<i>: the
                                                residual's branch index, 0 or 1 by version)
          3.3.fn.*                              encoder.0.norm2.*
      b2: 3.0.0.1.in_proj_weight ...            encoder.0.self_attn.* (retroactive layer)
          3.0.1.fn.0.* / fn.1.fn.0.* / fn.1.fn.3.* / fn.2.*   encoder.0.norm1 / linear1 /
                                                linear2 / norm2
          3.1.fn.<b1 layer keys without "3.">   encoder.1.*
      4.fn.*                                    norm.*
      5.*                                       head.*

- ``"torch"``: the same network written with ``torch.nn`` modules: ``embedding`` (Linear),
  ``position.weight`` (``nn.Embedding``, learned PE) or ``position.pe.*``, ``encoder.layers.<i>.*``
  (``nn.TransformerEncoder``'s layer keys), ``norm`` (LayerNorm), ``head`` (Linear).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Tuple

__all__ = ["CONTINUAL_TRANSFORMERS", "TORCH", "detect_format", "to_cozoo_keys"]

CONTINUAL_TRANSFORMERS = "continual_transformers"
TORCH = "torch"

_COMMON: List[Tuple[str, str]] = [
    (r"^0\.", "embedding."),
    (r"^1\.pe\.", "position.pe."),
    (r"^4\.fn\.", "norm."),
    (r"^5\.", "head."),
]


def _single_output_rules(prefix: str, layer: int) -> List[Tuple[str, str]]:
    """A single-output block of continual-transformers under ``prefix`` -> ``encoder.<layer>``."""
    p, to = re.escape(prefix), f"encoder.{layer}."
    return [
        (rf"^{p}0\.1\.", f"{to}self_attn."),
        (rf"^{p}1\.fn\.", f"{to}norm1."),
        (rf"^{p}2\.[01]\.0\.", f"{to}linear1."),
        (rf"^{p}2\.[01]\.3\.", f"{to}linear2."),
        (rf"^{p}3\.fn\.", f"{to}norm2."),
    ]


_RETROACTIVE: List[Tuple[str, str]] = [
    (r"^3\.0\.0\.1\.", "encoder.0.self_attn."),
    (r"^3\.0\.1\.fn\.0\.", "encoder.0.norm1."),
    (r"^3\.0\.1\.fn\.1\.fn\.0\.", "encoder.0.linear1."),
    (r"^3\.0\.1\.fn\.1\.fn\.3\.", "encoder.0.linear2."),
    (r"^3\.0\.1\.fn\.2\.", "encoder.0.norm2."),
]

_TORCH: List[Tuple[str, str]] = [
    (r"^encoder\.layers\.(\d+)\.", r"encoder.\1."),
    (r"^position\.weight$", "position.pe.weight"),
]


def _rules(fmt: str, layers: int) -> List[Tuple[str, str]]:
    if fmt == TORCH:
        return _TORCH
    if fmt != CONTINUAL_TRANSFORMERS:
        raise ValueError(f"unknown CoOadTR checkpoint format {fmt!r}")
    if layers == 1:
        return _COMMON + _single_output_rules("3.", 0)
    return _COMMON + _RETROACTIVE + _single_output_rules("3.1.fn.", 1)


def to_cozoo_keys(state: Mapping[str, Any], fmt: str, layers: int) -> Dict[str, Any]:
    """``state`` of format ``fmt`` with cozoo's keys (keys no rule renames are kept as they
    are, so that the strict load reports them)."""
    rules = [(re.compile(pattern), to) for pattern, to in _rules(fmt, layers)]
    out: Dict[str, Any] = {}
    for key, value in state.items():
        new = key
        for pattern, to in rules:
            if pattern.search(key):
                new = pattern.sub(to, key, count=1)
                break
        out[new] = value
    return out


def detect_format(state: Mapping[str, Any]) -> str:
    """``"continual_transformers"`` (keys start with a digit), ``"torch"`` (``encoder.layers.``
    or ``position.weight``) or ``"cozoo"``."""
    keys = list(state)
    if keys and all(k[:1].isdigit() for k in keys):
        return CONTINUAL_TRANSFORMERS
    if any(k.startswith("encoder.layers.") or k == "position.weight" for k in keys):
        return TORCH
    return "cozoo"
