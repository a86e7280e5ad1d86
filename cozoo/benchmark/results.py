"""Writing the rows of a suite: CSV + JSON files (``save=true``, ``json=...``) and the printed
tables of the core, flops and speed suites."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any, Dict, List

from .timing import environment


def write_results(
    rows: List[dict],
    suite: str,
    results_dir: str | Path,
    cfg: Any = None,
    stem: str | None = None,
) -> Dict[str, Path]:
    """Write ``rows`` as ``{results_dir}/{stem}.csv`` and ``.json`` (default stem:
    ``{suite}_{time}``; the JSON also holds the environment and the config); returns the two
    paths."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / (stem or f"{suite}_{time.strftime('%Y%m%d-%H%M%S')}")
    config = None
    if cfg is not None:
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    paths = {"csv": stem.with_suffix(".csv"), "json": stem.with_suffix(".json")}
    paths["json"].write_text(
        json.dumps(
            {"suite": suite, "environment": environment(), "config": config, "rows": rows},
            indent=2,
            default=str,
        )
    )
    columns: List[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return paths


def write_json(rows: List[dict], path: str | Path) -> Path:
    """Write the bare ``rows`` as JSON to ``path`` (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2, default=str))
    return path


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    """``value`` formatted with ``spec`` + ``suffix``; "-" for None/NaN."""
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return format(value, spec) + suffix


def _name_width(rows: List[dict]) -> int:
    """Width of the model column: 8, or the longest model name."""
    return max([8] + [len(r["model"]) for r in rows])


def _print_header(header: str) -> None:
    print(header)
    print("-" * len(header))


def print_core_table(rows: List[dict]) -> None:
    """The core suite's pairs: A and B ms, A/B and its target, the spreads."""
    _print_header(
        f"{'benchmark':9} {'model':58} {'pair':42} {'A ms':>9} {'B ms':>9} {'A/B':>6} "
        f"{'target':>7} spread(A,B)"
    )
    for r in rows:
        target = "-" if r["target"] is None else f"<={r['target']:g}"
        print(
            f"{r['benchmark']:9} {r['model'][:58]:58} {r['pair'][:42]:42} {r['a_ms']:9.3f} "
            f"{r['b_ms']:9.3f} {r['ratio']:6.2f} {target:>7} "
            f"{r['a_spread']:.0%},{r['b_spread']:.0%}"
        )


def print_flops_table(rows: List[dict]) -> None:
    """The flops suite: ours beside the published ("-" where a model has none)."""
    w = _name_width(rows)
    print("GMACs (multiply-accumulates) per sample, ptflops module hooks, functional ops off")
    _print_header(
        f"{'model':{w}} {'input':13} {'params':>10} {'(pub.)':>10} {'clip':>7} {'(pub.)':>7} "
        f"{'step':>6} {'mean':>6} {'pred.':>6} {'pub.conv':>8} {'(pub.)':>6} {'reduct.':>7} "
        f"{'(pub.)':>6}"
    )
    for r in rows:
        print(
            f"{r['model']:{w}} {r['input']:13} {r['params']:10d} "
            f"{_fmt(r['params_published'], '10d'):>10} {r['clip_gmacs']:7.3f} "
            f"{_fmt(r['clip_gmacs_published'], '7.2f'):>7} {r['step_gmacs']:6.3f} "
            f"{r['step_gmacs_mean']:6.3f} {r['prediction_gmacs']:6.3f} "
            f"{r['step_gmacs_published_convention']:8.3f} "
            f"{_fmt(r['step_gmacs_published'], '6.2f'):>6} {r['reduction']:6.1f}x "
            f"{_fmt(r['reduction_published'], '5.1f', 'x'):>6}"
        )


def print_speed_table(rows: List[dict]) -> None:
    """The speed table, the memory/stream table, the published figures and the batch
    summary."""
    _print_timing_table(rows)
    print()
    _print_memory_table(rows)
    print()
    _print_published_table(rows)
    for line in batch_summary(rows):
        print(line)


def _print_timing_table(rows: List[dict]) -> None:
    w = _name_width(rows)
    _print_header(
        f"{'model':{w}} {'P':>3} {'input':11} {'B':>2} {'thr':>3} {'clip ms':>9} {'±':>4} "
        f"{'step ms':>8} {'±':>4} {'ms/stream-frame':>15} {'speedup':>7} {'target':>6} "
        f"{'FLOPs red.':>10} {'realised':>8}"
    )
    for r in rows:
        target = "-" if r["target"] is None else f">={r['target']:g}"
        if r["meets_target"] is not None:
            target += " ok" if r["meets_target"] else " NO"
        print(
            f"{r['model']:{w}} {_fmt(r['pool_size'], '3d'):>3} {r['input']:11} {r['batch']:2d} "
            f"{r['threads']:3d} {r['clip_ms']:9.1f} {r['clip_spread']:4.0%} {r['step_ms']:8.2f} "
            f"{r['step_spread']:4.0%} {r['step_ms_per_stream']:15.2f} {r['speedup']:6.1f}x "
            f"{target:>6} {_fmt(r['flops_reduction'], '.1f', 'x'):>10} "
            f"{_fmt(r['realised'], '.0%'):>8}"
        )


def _print_memory_table(rows: List[dict]) -> None:
    w = _name_width(rows)
    _print_header(
        f"{'model':{w}} {'B':>2} {'thr':>3} {'state MB/stream':>15} {'mem MB/stream clip':>18} "
        f"{'step':>6} {'(pub. clip':>10} {'step)':>6} {'warm-up s':>9} {'(steps)':>7} "
        f"{'video steps/s':>13} {'compile s':>9} {'compiled ms':>11} {'vs eager':>8} "
        f"{'compiled clip/step':>18}"
    )
    for r in rows:
        compiled = (
            f"{'failed':>9} {'':11} {'':8}"
            if r.get("compile_error")
            else f"{_fmt(r['compile_s'], '9.1f'):>9} {_fmt(r['compiled_step_ms'], '11.2f'):>11} "
            f"{_fmt(r['compile_speedup'], '.2f', 'x'):>8} "
            f"{_fmt(r.get('compiled_speedup'), '.1f', 'x'):>18}"
        )
        print(
            f"{r['model']:{w}} {r['batch']:2d} {r['threads']:3d} "
            f"{r['state_mb_per_stream']:15.1f} "
            f"{_fmt(r['clip_memory_mb_per_stream'], '18.1f'):>18} "
            f"{_fmt(r['step_memory_mb_per_stream'], '6.1f'):>6} "
            f"{_fmt(r['published_clip_memory_mb'], '10.1f'):>10} "
            f"{_fmt(r['published_step_memory_mb'], '6.1f'):>6} {r['warmup_s']:9.2f} "
            f"{r['warmup_steps']:7d} {_fmt(r['video_steps_per_s'], '13.2f'):>13} {compiled}"
        )


def _print_published_table(rows: List[dict]) -> None:
    w = _name_width(rows)
    print("published (the weights' meta; name@other: the clip model is other's published one)")
    _print_header(
        f"{'model':{w}} {'P':>3} {'top-1':>6} {'clip model':>13} {'top-1':>6} {'GMACs clip':>10} "
        f"{'step':>5} {'reduction':>9} {'CPU speedup':>11}"
    )
    seen = set()
    for r in rows:
        if (r["model"], r["pool_size"]) in seen:
            continue
        seen.add((r["model"], r["pool_size"]))
        print(
            f"{r['model']:{w}} {_fmt(r['pool_size'], '3d'):>3} "
            f"{_fmt(r['published_top1'], '6.2f'):>6} "
            f"{r['published_clip_model'] or '-':>13} {_fmt(r['published_clip_top1'], '6.2f'):>6} "
            f"{_fmt(r['published_clip_gmacs'], '10.2f'):>10} "
            f"{_fmt(r['published_step_gmacs'], '5.2f'):>5} "
            f"{_fmt(r['published_reduction'], '8.1f', 'x'):>9} "
            f"{_fmt(r['published_cpu_speedup'], '.1f', 'x'):>11}"
        )


def batch_summary(rows: List[dict]) -> List[str]:
    """Per model and thread count: cost per stream-frame of a batch of B streams vs batch 1
    (interleaved with a batch-1 copy where measured, else against the batch-1 row)."""
    lines = []
    for r in rows:
        if r["batch"] == 1:
            continue
        if r.get("stream_frame_gain") is not None:
            lines.append(
                f"{r['model']}, {r['threads']} thread(s), interleaved: a step costs "
                f"{r['step_ms_per_stream']:.2f} ms per stream-frame at batch {r['batch']} vs "
                f"{r['batch1_step_ms']:.2f} ms at batch 1 ({_less(r['stream_frame_gain'])})"
            )
            continue
        base = [
            b
            for b in rows
            if b["batch"] == 1
            and (b["model"], b["threads"], b["input"]) == (r["model"], r["threads"], r["input"])
        ]
        if base:
            b = base[0]
            lines.append(
                f"{r['model']}, {r['threads']} thread(s): a step costs "
                f"{r['step_ms_per_stream']:.2f} ms per stream-frame at batch {r['batch']} vs "
                f"{b['step_ms_per_stream']:.2f} ms at batch 1 "
                f"({_less(b['step_ms_per_stream'] / r['step_ms_per_stream'])})"
            )
    if lines:
        lines.insert(0, "")
    return lines


def _less(gain: float) -> str:
    return f"{gain:.2f}x less" if gain >= 1 else f"{1 / gain:.2f}x MORE"
