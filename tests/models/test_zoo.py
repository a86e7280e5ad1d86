"""The README's zoo table is the one generated from the weights' meta; the flops benchmark runs."""

from __future__ import annotations

from pathlib import Path

from cozoo import benchmark
from cozoo.models.zoo import END, START, zoo_rows, zoo_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_zoo_table_is_generated_from_meta():
    text = README.read_text()
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == zoo_table(), "run: python -m cozoo.models.zoo --update README.md"


def test_zoo_rows_cover_every_published_pool_size():
    rows = zoo_rows()
    assert {(r["builder"], r["pool_size"]) for r in rows} >= {
        ("cox3d_s", 13), ("cox3d_s", 64), ("cox3d_m", 16), ("cox3d_m", 64),
        ("cox3d_l", 16), ("cox3d_l", 64), ("coslow", 8), ("coslow", 64), ("coi3d", 8),
    }  # fmt: skip
    for r in rows:
        assert r["reduction"] == r["clip"] / r["step"]


def test_flops_benchmark_prints_ours_beside_published(capsys):
    rows = benchmark.run_flops(type("Args", (), {"pattern": "cox3d_s"})())
    assert len(rows) == 1
    row = rows[0]
    assert row["params"] == row["params_published"]
    assert abs(row["clip_gmacs"] / row["clip_gmacs_published"] - 1) < 0.01
    assert round(row["step_gmacs_published_convention"], 2) == row["step_gmacs_published"]
    assert row["step_gmacs"] <= row["step_gmacs_published_convention"]
    assert "cox3d_s" in capsys.readouterr().out
