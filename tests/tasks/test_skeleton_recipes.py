"""The skeleton recipes: one per published NTU row (model x benchmark x split x modality), each
composing that row's protocol; a base recipe per model trains on the generated NTU sample with
clip and continual validation; ``cozoo.evaluate`` evaluates one and two streams.

Runs on the ``tiny`` generated sample with 2-sample batches and 2 training steps.
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
from cozoo.train import train

RECIPES = {
    entry.name[: -len(".yaml")]
    for entry in (resources.files("cozoo.recipes") / "recipe").iterdir()
    if entry.name.endswith(".yaml")
}
CONTINUAL = [n for n in list_models(family="skeleton") if n.startswith("co")]


@pytest.fixture(scope="module")
def ntu_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ntu_cache")


def compose_config(name: str, overrides: List[str]) -> DictConfig:
    with initialize_config_module("cozoo.recipes", version_base="1.3"):
        return compose(name, overrides=overrides)


def fast(runs: Path, cache: Path, *extra: str) -> List[str]:
    return [
        f"runs_root={runs}",
        f"data.cache_dir={cache}",
        "data.sample_size=tiny",
        "data.num_workers=0",
        "sample.batch_size=2",
        "trainer=debug",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        *extra,
    ]


def _ntu_members(model: str):
    return [m for m in get_model_weights(model) if m.meta.input.graph == "ntu"]


@pytest.mark.parametrize("model", CONTINUAL)
def test_every_published_ntu_row_has_a_recipe_with_its_protocol(model: str):
    members = _ntu_members(model)
    assert len(members) == 8  # NTU-60 xsub/xview, NTU-120 xsub/xset; joint/bone
    assert model in RECIPES
    for member in members:
        recipe = member.meta.recipe
        assert recipe in RECIPES, recipe
        cfg = compose_config("train", [f"recipe={recipe}", "data.root=/data/ntu"])
        data = OmegaConf.to_container(cfg.data, resolve=True)
        net = OmegaConf.to_container(cfg.model, resolve=True)
        assert get_model_weights(model).verify(cfg.published.weights) is member
        benchmark, split, modality = recipe[len(model) + 1 :].split("_")
        assert (data["benchmark"], data["split"], data["modality"]) == (
            benchmark, split, modality
        )  # fmt: skip
        assert member.meta.input.modality == modality
        assert data["frames"] == member.meta.input.frames == 300
        assert net["name"] == model and net["num_classes"] == member.meta.num_classes
        assert net["pool_size"] is None and net["in_channels"] == 3
        for key, value in member.meta.model_kwargs.items():
            assert net[key] == value, key


@pytest.mark.parametrize("model", ["costgcn", "costgcn_mod"])
def test_the_protocol_of_the_published_evaluation(model: str):
    """Original networks: the clip mode's first output (frame 296) and the last 4 steps hold the
    continual prediction; mod networks: one output, at frame 299."""
    cfg = compose_config("evaluate", [f"recipe={model}", "weights=/x.pt", "data.root=/d"])
    task = OmegaConf.to_container(cfg.task, resolve=True)
    mod = model.endswith("_mod")
    assert task["clip_output"] == "mean" if mod else "first"
    assert task["predict_steps"] == (1 if mod else 4)
    assert task["init"] == "torch" and task["clip_align"] == "end"


@pytest.mark.parametrize("recipe", ["costgcn_mod", "costr", "coagcn_mod_ntu60_xview_bone"])
def test_recipe_trains_on_the_sample_and_validates_in_both_modes(recipe, tmp_path, ntu_cache):
    cfg = compose_config("train", [f"recipe={recipe}", *fast(tmp_path / "runs", ntu_cache)])
    metrics = train(cfg)
    for key in ("val/clip/top1", "val/continual/top1"):
        assert 0.0 <= float(metrics[key]) <= 1.0
    if recipe.startswith("costgcn_mod") or recipe.startswith("costr"):
        # exact continual networks: the continual prediction is the clip output
        assert float(metrics["val/clip/top1"]) == float(metrics["val/continual/top1"])


def test_evaluate_one_and_two_streams_beside_the_published_figures(tmp_path, ntu_cache, capsys):
    """Weights files (the published ones have no URL) are compared with the figures of the
    entry the recipe names; ``bone_weights`` evaluates the two-stream model."""
    torch.manual_seed(0)
    files = {}
    for stream in ("joint", "bone"):
        net = create_model("costgcn_mod", num_classes=6, pool_size=8)
        files[stream] = tmp_path / f"{stream}.pt"
        torch.save(net.state_dict(), files[stream])
    common = fast(tmp_path / "runs", ntu_cache, f"weights={files['joint']}")
    rows = evaluate(compose_config("evaluate", ["recipe=costgcn_mod", *common]))
    assert [r.published for r in rows if r.mode == "continual"] == [86.3]  # Table II, 1 stream
    two = compose_config(
        "evaluate", ["recipe=costgcn_mod", *common, f"bone_weights={files['bone']}"]
    )
    rows = evaluate(two)
    assert [r.published for r in rows if r.mode == "continual"] == [88.3]  # Table III, 2 streams
    assert two.data.modality == "joint_bone"
    assert "88.3" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["costgcn_mod", "coagcn_mod", "costr_mod"])
def test_the_mod_fine_tuning_recipe(model: str):
    cfg = compose_config("train", [f"recipe={model}_finetune", "data.root=/data/ntu"])
    task = OmegaConf.to_container(cfg.task, resolve=True)
    assert task["scheduler"] == {"name": "onecycle", "warmup_fraction": 0.3}
    assert task["optimizer"] == {
        "name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4
    }  # fmt: skip
    assert cfg.published.max_epochs == 30 and cfg.model.name == model


def test_onecycle_rises_to_the_lr_then_falls_far_below():
    from cozoo.tasks._optim import build_optimizer, build_scheduler

    weight = torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = build_optimizer([weight], {"name": "sgd", "lr": 0.1})
    schedule = build_scheduler(optimizer, {"name": "onecycle", "warmup_fraction": 0.3}, 100)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule["scheduler"].step()
    peak = max(range(100), key=lambda i: lrs[i])
    assert 25 <= peak <= 31 and abs(lrs[peak] - 0.1) < 1e-3
    assert lrs[0] < 0.01 and lrs[-1] < 1e-4
