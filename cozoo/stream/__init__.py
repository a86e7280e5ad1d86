"""Live per-step predictions of a continual network for many streams at once:
``python -m cozoo.stream [KEY=VALUE ...]`` (Hydra, ``cozoo/recipes/stream.yaml``).

::

    python -m cozoo.stream                                  # the generated sample, cox3d_m
    python -m cozoo.stream model=cox3d_m weights=DEFAULT 'inputs=[a.mp4,rtsp://cam/1,/dev/video0]'
    python -m cozoo.stream model=costgcn_mod weights=J.ckpt 'inputs=[seq.npy]' mode=realtime

Every source is a row of one batched continual state; a source that ends or fails is reported,
its row cleaned (``model.clean_state(streams=[i])``) and given to the next waiting source, while
the other rows keep their state: each source gets the predictions it would get alone.

From Python::

    from cozoo.stream import StreamModel, Scheduler, StepArraySource, stream
    sm = StreamModel(my_continual_net.eval(), "mine", "random")    # any step (B, ...)
    summary = stream(sm, [StepArraySource("feats.npy")], run_dir)

Modules, one job each::

    sources    video files/cameras/URLs (PyAV), skeleton arrays and NTU files, step arrays
    loading    model + weights + input protocol (+ class names), frame -> step transforms
    pacing     clocks, the look-ahead reader, the real-time drop policy
    scheduler  continuous batching over one batched state
    outputs    JSONL per source, timeline PNG, annotated mp4, summary.json
    display    the rich live table
    cli        the Hydra command
"""

from .loading import StreamModel, load_stream_model, step_transform, video_step
from .outputs import Outputs
from .pacing import Clock, FakeClock
from .scheduler import Scheduler, Sink, StreamStats
from .sources import (
    Frame,
    SkeletonSource,
    Source,
    SourceError,
    StepArraySource,
    VideoSource,
    expand_inputs,
    pyskl_sources,
)

__all__ = [
    "Clock",
    "FakeClock",
    "Frame",
    "Outputs",
    "Scheduler",
    "Sink",
    "SkeletonSource",
    "Source",
    "SourceError",
    "StepArraySource",
    "StreamModel",
    "StreamStats",
    "VideoSource",
    "expand_inputs",
    "load_stream_model",
    "pyskl_sources",
    "step_transform",
    "stream",
    "video_step",
]


def stream(*args, **kwargs):
    """:func:`cozoo.stream.cli.stream` (imported lazily: it brings Hydra)."""
    from .cli import stream as _stream

    return _stream(*args, **kwargs)
