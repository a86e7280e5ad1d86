"""The command: ``python -m cozoo.stream [KEY=VALUE ...]``, a Hydra app on
``cozoo/recipes/stream.yaml``; ``run(cfg)`` runs a composed config from Python."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from cozoo.models import FeatureInput, SkeletonInput, VideoInput

from .display import LiveDisplay, describe
from .loading import StreamModel, load_stream_model
from .outputs import Outputs
from .scheduler import Scheduler, percentile
from .sources import (
    SkeletonSource,
    Source,
    SourceError,
    StepArraySource,
    VideoSource,
    expand_inputs,
    pyskl_sources,
)

__all__ = ["default_inputs", "default_sources", "main", "make_sources", "run", "stream"]


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_sources(
    inputs: Sequence[str], protocol: Any, array_rate: float = 30.0, pyskl_split: str = "xsub_val"
) -> List[Source]:
    """One source per input (folders expanded), of the kind the protocol reads: videos through
    PyAV for a video model, joint arrays / ``.skeleton`` files / the sequences of a pyskl pickle
    (``file.pkl`` or ``file.pkl::SPLIT``) for a skeleton model, step arrays
    ``(L, ...)`` otherwise (``(L, D)`` checked for a feature model)."""
    sources: List[Source] = []
    for location in expand_inputs(inputs):
        is_array = location.endswith((".npy", ".skeleton"))
        if isinstance(protocol, VideoInput) and not is_array:
            rate = protocol.sampling_rate
            sources.append(VideoSource(location, fps=protocol.fps, sampling_rate=rate))
        elif isinstance(protocol, SkeletonInput):
            kwargs = {
                "rate": array_rate,
                "channels": protocol.channels,
                "joints": protocol.joints,
                "persons": protocol.persons,
                "graph": protocol.graph,
                "modality": protocol.modality,
            }
            if location.partition("::")[0].endswith(".pkl"):
                sources += pyskl_sources(location, pyskl_split, **kwargs)
            else:
                sources.append(SkeletonSource(location, **kwargs))
        else:
            shape = (protocol.dim,) if isinstance(protocol, FeatureInput) else None
            sources.append(StepArraySource(location, rate=array_rate, step_shape=shape))
    return sources


def _round_robin(labels: Sequence[int], count: int) -> List[int]:
    """Indices of ``count`` items taking the classes in turn (first item of each, then the
    second...)."""
    by_class: Dict[int, List[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    picked: List[int] = []
    for k in range(max((len(v) for v in by_class.values()), default=0)):
        picked += [v[k] for _, v in sorted(by_class.items()) if k < len(v)]
    return picked[: int(count)]


def default_inputs(size: str = "small", count: int = 12) -> List[str]:
    """``count`` val videos of the generated Kinetics-layout sample (written into the cache when
    missing), taking the classes in turn."""
    from cozoo.data.kinetics.sample import SAMPLE_CLASSES, ensure_sample

    root = ensure_sample(size=size)
    videos = [
        (p, k)
        for k, c in enumerate(SAMPLE_CLASSES)
        for p in sorted((root / "val" / c).glob("*.mp4"))
    ]
    return [str(videos[i][0]) for i in _round_robin([k for _, k in videos], count)]


def default_sources(protocol: Any, size: str, count: int, rate: float) -> List[Source]:
    """The embedded default: ``count`` val items of the generated sample of the model's
    dataset (Kinetics-layout videos, or NTU-layout skeleton sequences)."""
    if isinstance(protocol, VideoInput):
        inputs = default_inputs(size, count)
        say(f"cozoo.stream: the GENERATED SAMPLE: {len(inputs)} val videos of "
            f"{Path(inputs[0]).parents[2]}")  # fmt: skip
        sources = make_sources(inputs, protocol, rate)
        for source in sources:  # the class folder in the name: "moving_left-<youtube id>"
            source.name = f"{Path(source.location).parent.name.replace(' ', '_')}-{source.name}"
        return sources
    if isinstance(protocol, SkeletonInput):
        import numpy as np

        from cozoo.data.ntu.layouts import AgcnNpySplit
        from cozoo.data.ntu.sample import ensure_sample

        root = ensure_sample(size=size)
        split = AgcnNpySplit(root, "val")
        data = np.load(split.data_path("joint"), mmap_mode="r")
        picked = _round_robin(split.labels, count)
        say(f"cozoo.stream: the GENERATED SAMPLE: {len(picked)} val sequences of {root}")
        return [
            SkeletonSource(
                f"{split.data_path('joint')}[{i}]",
                split.names[i],
                rate,
                protocol.channels,
                protocol.joints,
                protocol.persons,
                protocol.graph,
                protocol.modality,
                data[i],
            )  # fmt: skip
            for i in picked
        ]
    raise ValueError("cozoo.stream: no generated sample for this model: give inputs=[...]")


def _protocol_dict(protocol: Any) -> Optional[Dict[str, Any]]:
    if protocol is None:
        return None
    import dataclasses

    return {"kind": protocol.kind, **dataclasses.asdict(protocol)}


def stream(
    sm: StreamModel,
    sources: Sequence[Source],
    run_dir: Path,
    *,
    rows: int = 8,
    mode: str = "offline",
    topk: int = 5,
    max_frames: Optional[int] = None,
    annotate: bool = False,
    timeline: bool = True,
    timeline_classes: int = 5,
    display: bool = True,
    clock: Any = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Stream ``sources`` through ``sm`` and write the outputs under ``run_dir``; returns the
    summary (also ``run_dir/summary.json``)."""
    outputs = Outputs(Path(run_dir), sm.label, sm.class_names, annotate, timeline, timeline_classes)
    with LiveDisplay(outputs, enabled=display, topk=min(3, topk)) as live:
        scheduler = Scheduler(
            sm, sources, rows=rows, mode=mode, sink=live, clock=clock, topk=topk,
            max_frames=max_frames,
        )  # fmt: skip
        t0 = scheduler.clock.now()
        error: Optional[BaseException] = None
        try:
            stats = scheduler.run()
        except Exception as e:  # the network itself failed: keep the summary, then raise
            error, stats = e, scheduler.stats
        seconds = scheduler.clock.now() - t0
        live.final(stats, scheduler.clock.now())
    frames = sum(s.frames for s in stats)
    summary = {
        "model": sm.name,
        "weights": sm.weights,
        "random_weights": sm.random,
        "protocol": _protocol_dict(sm.protocol),
        "mode": mode,
        "rows": scheduler.rows,
        "sources": len(sources),
        "interrupted": scheduler.interrupted,
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "batch_steps": scheduler.batch_steps,
        "seconds": round(seconds, 4),
        "frames": frames,
        "frames_per_s": round(frames / seconds, 3) if seconds > 0 else None,
        "dropped": sum(s.dropped for s in stats),
        "failed": sum(s.status == "failed" for s in stats),
        "step_latency_ms_p50": percentile(scheduler.step_latencies_ms, 50),
        "step_latency_ms_p95": percentile(scheduler.step_latencies_ms, 95),
        **(extra or {}),
        "streams": [{"index": s.index, **s.summary(scheduler.clock.now())} for s in stats],
    }
    path = outputs.write_summary(summary)
    if error is not None:
        raise error
    if live.live is not None:
        for s in stats:
            say(f"cozoo.stream: {describe(s)}")
    say(
        f"cozoo.stream: {frames} frames of {len(sources)} sources in {seconds:.1f} s "
        f"({summary['frames_per_s']} frames/s, rows={scheduler.rows}, step p95 "
        f"{summary['step_latency_ms_p95'] or 0:.1f} ms, {summary['dropped']} dropped, "
        f"{summary['failed']} failed); wrote {path}"
    )
    return summary


def run(cfg: Any) -> Dict[str, Any]:
    """Run a composed ``stream`` config."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    kwargs = dict(OmegaConf.to_container(cfg.model, resolve=True))  # type: ignore[arg-type]
    name = str(kwargs.pop("name"))
    sm = load_stream_model(
        name, cfg.weights and str(cfg.weights), str(cfg.runs_root), say, **kwargs
    )
    sm.model.to(str(cfg.get("device", "cpu")))
    inputs = cfg.get("inputs")
    try:
        if inputs is None:
            rate = float(cfg.array_rate)
            sources = default_sources(
                sm.protocol, str(cfg.sample_size), int(cfg.sample_videos), rate
            )
        else:
            inputs = [inputs] if isinstance(inputs, str) else list(inputs)
            split = str(cfg.get("pyskl_split", "xsub_val"))
            sources = make_sources(inputs, sm.protocol, float(cfg.array_rate), split)
    except SourceError as e:
        raise SystemExit(f"cozoo.stream: {e}") from None
    if not sources:
        raise SystemExit("cozoo.stream: no input (inputs=[...])")
    say(f"cozoo.stream: {sm.name} ({sm.weights}), {len(sources)} sources, mode={cfg.mode}")
    return stream(
        sm,
        sources,
        Path(str(cfg.run_dir)),
        rows=int(cfg.rows),
        mode=str(cfg.mode),
        topk=int(cfg.topk),
        max_frames=cfg.max_frames,
        annotate=bool(cfg.annotate),
        timeline=bool(cfg.timeline),
        timeline_classes=int(cfg.timeline_classes),
        display=bool(cfg.display),
        extra={"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "run_dir": str(cfg.run_dir)},
    )


@hydra.main(config_path="pkg://cozoo.recipes", config_name="stream", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    run(cfg)


def shorthand_argv(argv: Sequence[str]) -> List[str]:
    """``model=NAME`` -> ``model.name=NAME`` (``model`` is also a config group of the tree, so
    Hydra would look for ``model/NAME.yaml``) and ``model.KEY=V`` -> ``++model.KEY=V`` (builder
    kwargs the config does not list)."""
    out = []
    for a in argv:
        if a.startswith("model="):
            a = f"model.name={a[6:]}"
        elif a.startswith("model.") and not a.startswith("model.name="):
            a = f"++{a}"
        out.append(a)
    return out


def main(argv: Optional[List[str]] = None) -> None:
    """``python -m cozoo.stream [model=NAME] [KEY=VALUE ...]`` (Hydra overrides)."""
    sys.argv = [sys.argv[0], *shorthand_argv(sys.argv[1:] if argv is None else argv)]
    _hydra_main()
