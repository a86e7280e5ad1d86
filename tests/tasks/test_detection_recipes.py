"""The online-detection recipes and ``OnlineDetectionTask``: every published THUMOS14 row has a
recipe with its protocol; a recipe trains on the generated sample and evaluates windows and the
streamed videos (equal for a continual model, whose windows are read at their stream offsets);
``cozoo.evaluate`` prints the published mAP beside the measured one.

Runs narrow networks (E=16) on the ``tiny`` generated sample with 2 training steps.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import List

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from cozoo.evaluate import evaluate
from cozoo.models import create_model, get_model_weights, list_models
from cozoo.tasks import OnlineDetectionTask
from cozoo.tasks._optim import build_optimizer, build_scheduler
from cozoo.train import train

RECIPES = {
    entry.name[: -len(".yaml")]
    for entry in (resources.files("cozoo.recipes") / "recipe").iterdir()
    if entry.name.endswith(".yaml")
}
MODELS = list_models(family="detection")
NARROW = ["+model.embed_dim=16", "+model.heads=2", "+model.ff_dim=16"]


@pytest.fixture(scope="module")
def thumos_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("thumos_cache")


def compose_config(name: str, overrides: List[str]) -> DictConfig:
    with initialize_config_module("cozoo.recipes", version_base="1.3"):
        return compose(name, overrides=overrides)


def fast(runs: Path, cache: Path, *extra: str) -> List[str]:
    return [
        f"runs_root={runs}",
        f"data.cache_dir={cache}",
        "data.sample_size=tiny",
        "sample.batch_size=32",
        "trainer=debug",
        "trainer.limit_val_batches=null",  # every test window: each class has positives
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "task.stream_batch=8",
        *extra,
    ]


@pytest.mark.parametrize("model", MODELS)
def test_every_published_row_has_a_recipe_with_its_protocol(model: str):
    for member in get_model_weights(model):
        recipe = member.meta.recipe
        assert recipe in RECIPES, recipe
        cfg = compose_config("train", [f"recipe={recipe}", "data.root=/data/thumos"])
        data = OmegaConf.to_container(cfg.data, resolve=True)
        task = OmegaConf.to_container(cfg.task, resolve=True)
        assert get_model_weights(model).verify(cfg.published.weights) is member
        dim = member.meta.input.dim
        assert data["audio"] == (dim > 4096)
        assert data["features"] == ("kinetics" if dim in (4096, 8192) else "anet")
        assert data["batch_size"] == 128 and data["window"] == 64 == member.meta.input.frames
        assert task["optimizer"] == {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4}
        assert task["scheduler"] == {"name": "step", "step_epochs": 1, "gamma": 0.1}
        assert cfg.trainer.gradient_clip_val == 1.0 and cfg.published.max_epochs == 4
        net = OmegaConf.to_container(cfg.model, resolve=True)
        assert net["name"] == model and net["num_classes"] == 22
        for key, value in member.meta.model_kwargs.items():
            if key != "feature_dim":  # null in the recipe: taken from the data module
                assert net[key] == value, key


@pytest.mark.parametrize("recipe", ["cooadtr_b1", "cooadtr_b2", "oadtr"])
def test_recipe_trains_on_the_sample_and_evaluates_windows_and_streams(
    recipe, tmp_path, thumos_cache
):
    cfg = compose_config("train", [f"recipe={recipe}", *fast(tmp_path, thumos_cache), *NARROW])
    metrics = train(cfg)
    for key in ("val/clip/map", "val/continual/map", "val/continual/map_lstr"):
        assert 0.0 < float(metrics[key]) <= 1.0
    assert cfg.model.feature_dim == 4096  # the sample's Kinetics-width features


def test_windows_read_at_their_offsets_score_as_the_stream(tmp_path, thumos_cache):
    """All test windows in window mode and every video streamed: equal mAP (a continual model)."""
    cfg = compose_config(
        "train",
        ["recipe=cooadtr_b2", *fast(tmp_path, thumos_cache), *NARROW,
         "model.pe=learned", "model.pe_rows=64"],
    )  # fmt: skip
    metrics = train(cfg)
    assert abs(float(metrics["val/gap/map"])) < 1e-6
    assert float(metrics["val/clip/map"]) == pytest.approx(float(metrics["val/continual/map"]))


def test_streaming_scores_every_step_after_the_window(thumos_cache):
    """Videos of different lengths share one batched state: each is scored as if alone."""
    from cozoo.data.thumos import ThumosDataModule

    dm = ThumosDataModule(cache_dir=str(thumos_cache), sample_size="tiny")
    videos = list(dm.videos("test"))[:3]
    model = {"name": "cooadtr_b1", "feature_dim": 4096, "embed_dim": 16, "heads": 2,
             "ff_dim": 16}  # fmt: skip
    torch.manual_seed(0)
    together = OnlineDetectionTask(model, stream_batch=3)
    alone = OnlineDetectionTask(model, stream_batch=1)
    alone.load_state_dict(together.state_dict())
    for task in (together, alone):
        task.eval()
        task.stream_videos(videos, "val")
    a, b = together.metrics["val_continual_map_lstr"], alone.metrics["val_continual_map_lstr"]
    torch.testing.assert_close(torch.cat(a.scores), torch.cat(b.scores), rtol=0, atol=2e-6)
    steps = sum(
        v.features.shape[1] - 63 - int((v.targets[63:].argmax(1) == 21).sum()) for v in videos
    )
    assert torch.cat(a.scores).shape[0] == steps


def test_evaluate_prints_the_published_map_beside_the_measured(tmp_path, thumos_cache, capsys):
    torch.manual_seed(0)
    net = create_model("cooadtr_b1", embed_dim=16, heads=2, ff_dim=16)
    path = tmp_path / "b1.pt"
    torch.save(net.state_dict(), path)
    common = fast(tmp_path / "runs", thumos_cache, f"weights={path}", *NARROW)
    rows = evaluate(compose_config("evaluate", ["recipe=cooadtr_b1", *common]))
    assert {r.mode for r in rows} == {"clip", "continual"}
    assert all(r.published == 64.5 for r in rows)  # Table 6, Kinetics features
    assert "64.5" in capsys.readouterr().out


def test_adam_and_the_step_schedule():
    weight = torch.nn.Parameter(torch.ones(2, 2))
    bias = torch.nn.Parameter(torch.ones(2))
    optimizer = build_optimizer([weight, bias], {"name": "adam"})
    assert isinstance(optimizer, torch.optim.Adam) and not isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4  # L2 on every parameter
    schedule = build_scheduler(optimizer, {"name": "step"}, total_steps=100)
    assert schedule["interval"] == "epoch"
    lrs = []
    for _ in range(4):
        lrs.append(optimizer.param_groups[0]["lr"])
        schedule["scheduler"].step()
    assert lrs == pytest.approx([1e-4, 1e-5, 1e-6, 1e-7])


def test_the_detection_timeline_figure(tmp_path, thumos_cache):
    """Ground-truth runs become segments in seconds (background and Ambiguous left out); the
    figure streams a video and writes a PNG."""
    from cozoo.figures import _segments, detection_timeline

    targets = torch.nn.functional.one_hot(torch.tensor([0, 0, 3, 3, 3, 21, 0, 5]), 22)
    segments = _segments(targets, 0.2, skip=(0, 21))
    assert [s.label for s in segments] == [3, 5]
    bounds = [value for s in segments for value in (s.start, s.end)]
    assert bounds == pytest.approx([0.4, 1.0, 1.4, 1.6])
    out = detection_timeline(
        tmp_path / "timeline.png", ["cooadtr_b1"], runs_root=str(tmp_path / "none"),
        sample_size="tiny", cache_dir=str(thumos_cache),
    )  # fmt: skip
    assert out.exists() and out.stat().st_size > 10_000


def test_videos_shorter_than_the_window_are_streamed_and_not_scored():
    from cozoo.data.thumos import ThumosVideo

    model = {"name": "cooadtr_b1", "feature_dim": 12, "embed_dim": 16, "heads": 2, "ff_dim": 16}
    task = OnlineDetectionTask(model, stream_batch=2).eval()
    short = ThumosVideo("short", torch.randn(12, 40), torch.eye(22)[torch.zeros(40).long()])
    assert task.stream_videos([short, short], "val") == 80
    assert task.metrics["val_continual_map"].scores == []
    # a window batch without stream positions is read at offset 0, whatever came before
    clips = torch.randn(3, 12, 64)
    with torch.no_grad():
        task(torch.randn(5, 12, 64), torch.arange(5))
        torch.testing.assert_close(task(clips), task(clips, torch.zeros(3, dtype=torch.long)))
