"""Moved to :mod:`cozoo.data.kinetics.sample` (the generated Kinetics-layout sample); this module
keeps ``cozoo.data.samples`` importable for existing code."""

from .kinetics.sample import (
    GENERATOR,
    KINETICS_CSV_HEADER,
    SAMPLE_CLASSES,
    SAMPLE_SIZES,
    SAMPLE_VERSION,
    SampleSpec,
    default_cache_dir,
    encode_mp4,
    ensure_sample,
    is_complete,
    render_video,
    sample_root,
    write_sample,
)

__all__ = [
    "GENERATOR",
    "KINETICS_CSV_HEADER",
    "SAMPLE_CLASSES",
    "SAMPLE_SIZES",
    "SAMPLE_VERSION",
    "SampleSpec",
    "default_cache_dir",
    "encode_mp4",
    "ensure_sample",
    "is_complete",
    "render_video",
    "sample_root",
    "write_sample",
]
