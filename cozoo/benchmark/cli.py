"""The command: ``python -m cozoo.benchmark [speed|core|flops|stream] [KEY=VALUE ...]``, a Hydra
app on ``cozoo/recipes/benchmark.yaml``; ``run(cfg)`` runs a composed config from Python."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace
from typing import Any, List, Sequence

import hydra
from omegaconf import DictConfig

from .core import run_core
from .flops import run_flops
from .results import write_json, write_results
from .speed import as_list, run_speed
from .stream import run_stream
from .timing import flushing_denormals, resolve_threads

SUITES = ("speed", "core", "flops", "stream")


def run(cfg: Any) -> List[dict]:
    """Run the suite ``cfg.suite`` of a composed ``benchmark`` config; print, maybe save.
    Subnormal floats are flushed to zero for the run (``flush_denormal``, default true)."""
    with flushing_denormals(bool(cfg.get("flush_denormal", True))):
        return _run_suite(cfg)


def _run_suite(cfg: Any) -> List[dict]:
    suite = str(cfg.suite)
    stem = f"{suite}_{time.strftime('%Y%m%d-%H%M%S')}"
    if suite == "speed":
        rows = run_speed(cfg, stem)
    elif suite == "core":
        rows = []
        for n in as_list(cfg.threads, [1]):
            args = SimpleNamespace(
                threads=resolve_threads(n),
                repeats=int(cfg.repeats if cfg.repeats is not None else 30),
                **{k: cfg.core[k] for k in ("layers", "channels", "size", "frames", "compile")},
            )
            rows += run_core(args)
    elif suite == "stream":
        rows = run_stream(cfg)
    elif suite == "flops":
        rows = run_flops(SimpleNamespace(pattern=str(cfg.pattern)))
    else:
        raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    if cfg.save:
        paths = write_results(rows, suite, cfg.results_dir, cfg, stem)
        print(f"wrote {paths['csv']} and {paths['json']}")
    if cfg.get("json"):
        print(f"wrote {write_json(rows, str(cfg.json))}")
    return rows


@hydra.main(config_path="pkg://cozoo.recipes", config_name="benchmark", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    run(cfg)


def shorthand_argv(argv: Sequence[str]) -> List[str]:
    """``core`` / ``flops`` / ``speed`` / ``stream`` as the first argument -> ``suite=...``
    (Hydra takes no positional arguments)."""
    argv = list(argv)
    if argv and argv[0] in SUITES:
        argv[0] = f"suite={argv[0]}"
    return argv


def main(argv: List[str] | None = None) -> None:
    """``python -m cozoo.benchmark [core|flops|speed|stream] [KEY=VALUE ...]`` (Hydra overrides)."""
    args = shorthand_argv(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0], *args]
    _hydra_main()
