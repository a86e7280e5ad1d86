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
    assert {(r["builder"], r["variant"]) for r in rows} >= {
        ("cox3d_s", "pool_size=13"), ("cox3d_s", "pool_size=64"), ("cox3d_m", "pool_size=16"),
        ("cox3d_m", "pool_size=64"), ("cox3d_l", "pool_size=16"), ("cox3d_l", "pool_size=64"),
        ("coslow", "pool_size=8"), ("coslow", "pool_size=64"), ("coi3d", "pool_size=8"),
    }  # fmt: skip
    metrics = {
        "video": "Kinetics-400 top-1 accuracy (%)",
        "skeleton": "NTU RGB+D 60 top-1 accuracy (%)",
        "detection": "THUMOS14 mAP (%)",
    }
    for r in rows:
        assert r["reduction"] == r["clip"] / r["step"]
        assert r["metric"] == metrics[r["family"]]


def test_zoo_has_one_skeleton_row_per_continual_model_with_its_table_ii_figure():
    rows = {r["builder"]: r for r in zoo_rows(family="skeleton")}
    assert set(rows) == {"costgcn", "costgcn_mod", "coagcn", "coagcn_mod", "costr", "costr_mod"}
    assert (rows["costgcn_mod"]["value"], rows["costgcn_mod"]["variant"]) == (
        86.3,
        "split=xsub, modality=joint",
    )
    assert (rows["costgcn_mod"]["receptive_field"], rows["costgcn_mod"]["delay"]) == (300, 299)


def test_zoo_table_has_one_table_per_family_and_none_for_an_unknown_one():
    assert zoo_table().count("Family `") == len({r["family"] for r in zoo_rows()})
    assert zoo_table(family="no_such_family") == ""


def test_flops_benchmark_prints_ours_beside_published(capsys):
    rows = benchmark.run_flops(type("Args", (), {"pattern": "cox3d_s"})())
    assert len(rows) == 1
    row = rows[0]
    assert row["params"] == row["params_published"]
    assert abs(row["clip_gmacs"] / row["clip_gmacs_published"] - 1) < 0.01
    assert round(row["step_gmacs_published_convention"], 2) == row["step_gmacs_published"]
    assert row["step_gmacs"] <= row["step_gmacs_published_convention"]
    assert "cox3d_s" in capsys.readouterr().out
