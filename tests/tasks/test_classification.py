"""cozoo.tasks (ContinualTask, ClassificationTask) and cozoo.callbacks: the two evaluation modes,
hyper-parameters, checkpoints (atomic, weights_only) and the throughput progress bar."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, Dataset

from cozoo.callbacks import AtomicCheckpointIO, ThroughputProgressBar
from cozoo.tasks import (
    ClassificationTask,
    VideoClassifier,
    get_rng_states,
    set_rng_states,
    upgrade_hparams,
)

SIZE = 32  # tiny frames: the ResNets/X3Ds reduce 32x32 to 1x1


def tiny(model: Optional[Dict[str, Any]] = None, **kwargs: Any) -> ClassificationTask:
    """CoX3D-S with a 2-frame head pool: delay 27 + 2 = 29."""
    net = dict(name="cox3d_s", num_classes=4, pool_size=2, dropout=0.0)
    net.update(model or {})
    kwargs.setdefault("optimizer", {"name": "adamw", "lr": 1e-3})
    return ClassificationTask(net, **kwargs)


class RandomClips(Dataset):
    """``n`` random clips ``(3, frames, SIZE, SIZE)`` with labels ``i % classes``."""

    def __init__(self, n: int, frames: int, classes: int = 4):
        g = torch.Generator().manual_seed(n * 100 + frames)
        self.videos = torch.randn(n, 3, frames, SIZE, SIZE, generator=g)
        self.classes = classes

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> Dict[str, object]:
        return {"video": self.videos[i], "label": i % self.classes, "video_index": i}


# --------------------------------------------------------------------------------------------
# The two modes
# --------------------------------------------------------------------------------------------
def test_continual_mode_is_the_last_step_output_after_a_warm_up_on_the_clip():
    module = tiny().eval()
    assert module.delay == 29 and module.required_frames() == 30
    video = torch.randn(2, 3, 33, SIZE, SIZE)
    logits = module.forward_continual(video)
    assert logits.shape == (2, 4, 1)
    logits = logits[:, :, 0]
    # by hand: frame by frame from a clean state, the output of the last frame
    module.model.clean_state()
    with torch.no_grad():
        outs = [module.model.forward_step(video[:, :, t]) for t in range(33)]
    assert all(o is None for o in outs[:29]) and all(o is not None for o in outs[29:])
    torch.testing.assert_close(logits, outs[-1], rtol=1e-4, atol=1e-5)
    # a clean state per call: the same clip gives the same answer again
    torch.testing.assert_close(module.forward_continual(video)[:, :, 0], logits)


def test_continual_mode_keeps_predict_steps_and_refuses_short_clips():
    module = tiny(predict_steps=3).eval()
    assert module.required_frames() == 32
    video = torch.randn(1, 3, 32, SIZE, SIZE)
    module.model.clean_state()
    with torch.no_grad():
        outs = module.model.forward_steps(video)  # (1, 4, 3): steps 29, 30, 31
    torch.testing.assert_close(module.forward_continual(video), outs)
    with pytest.raises(ValueError, match="continual_frames=32"):
        module.forward_continual(video[:, :, :31])


def test_the_input_key_names_the_batch_entry_of_any_family():
    """The task reads ``batch[input_key]``: a skeleton or feature data module plugs in by its
    key, with clips of any layout that has time at dim 2."""
    module = tiny(input_key="frames").eval()
    batch = {"frames": torch.randn(2, 3, 30, SIZE, SIZE), "label": torch.tensor([0, 3])}
    module.evaluate_batch("val", batch)
    metrics = module.compute_metrics("val")
    assert 0.0 <= float(metrics["val/continual/top1"]) <= 1.0
    with pytest.raises(KeyError, match="no 'video' \\(input_key='video'\\); its keys: 'frames'"):
        tiny().evaluate_batch("val", batch)


def test_clip_mode_averages_the_clip_forward_and_views_the_protocol_clip():
    module = tiny(clip_frames=4).eval()
    video = torch.arange(10.0).view(1, 1, 10, 1, 1).expand(1, 3, 10, SIZE, SIZE)
    assert module.clip_view(video)[0, 0, :, 0, 0].tolist() == [6.0, 7.0, 8.0, 9.0]
    centred = tiny(clip_frames=4, clip_align="center")
    assert centred.clip_view(video)[0, 0, :, 0, 0].tolist() == [3.0, 4.0, 5.0, 6.0]
    with torch.no_grad():
        torch.testing.assert_close(module(video), module.model(video).mean(dim=2))


def test_from_scratch_every_residual_block_starts_as_its_shortcut():
    module = tiny()  # init="pyslowfast"
    named = dict(module.model.named_modules())
    branches = [name for name in named if name.endswith(".branch")]
    assert len(branches) == 26  # CoX3D-S: 3 + 5 + 11 + 7 blocks
    for name in branches:
        assert torch.count_nonzero(named[name + ".norm_c"].weight) == 0, name
    assert torch.count_nonzero(module.model.stem.norm.weight) == 24  # other norms: weight 1
    assert module.model.head.projection.weight.std() < 0.02
    # each block is then relu(shortcut(x)): in eval mode (BN = affine), a stage-internal block
    # (identity shortcut) passes a non-negative input through unchanged
    block = named["res3.block1"].eval()
    x = torch.rand(1, 48, 3, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)
    # the layers' own defaults on request
    plain = tiny(init="torch")
    assert torch.count_nonzero(dict(plain.model.named_modules())[branches[0] + ".norm_c"].weight)
    with pytest.raises(ValueError, match="init"):
        tiny(init="xavier")


def _primitives(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_primitives(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_primitives(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def test_hyper_parameters_are_nested_primitives_and_validated():
    module = tiny()
    assert module.hparams.model == {"name": "cox3d_s", "num_classes": 4, "pool_size": 2,
                                    "dropout": 0.0}  # fmt: skip
    assert module.hparams.optimizer == {"name": "adamw", "lr": 1e-3}
    assert _primitives(dict(module.hparams))
    with pytest.raises(TypeError, match="model.pool_size"):
        tiny(model={"pool_size": torch.tensor(2)})
    with pytest.raises(ValueError, match="optimizer.name must be one of"):
        tiny(optimizer={"name": "lamb"})
    with pytest.raises(ValueError, match="'adamw' has no setting.*momentum"):
        tiny(optimizer={"name": "adamw", "momentum": 0.9})
    with pytest.raises(ValueError, match="warmup_fraction"):
        tiny(scheduler={"name": "cosine", "warmup_fraction": 1.5})
    with pytest.raises(ValueError, match="num_classes"):
        ClassificationTask({"name": "cox3d_s"})
    with pytest.raises(ValueError, match="clip_align"):
        tiny(clip_align="start")
    with pytest.raises(ValueError, match="at least one"):
        tiny(clip_eval=False, continual_eval=False)
    assert VideoClassifier is ClassificationTask  # cozoo 0.1's name


def test_hyper_parameters_of_cozoo_0_1_checkpoints_are_upgraded():
    flat = dict(arch="cox3d_m", num_classes=6, pool_size=8, temporal_fill="replicate",
                dropout=0.2, weights=None, init="pyslowfast", optimizer="adamw", lr=0.003,
                momentum=0.9, weight_decay=0.05, scheduler="cosine", warmup_fraction=0.1,
                label_smoothing=0.0, clip_eval=True, continual_eval=True, predict_steps=1,
                clip_frames=16, clip_align="end")  # fmt: skip
    new = upgrade_hparams(flat)
    assert new["model"] == {
        "name": "cox3d_m",
        "num_classes": 6,
        "pool_size": 8,
        "temporal_fill": "replicate",
        "dropout": 0.2,
        "weights": None,
    }
    assert new["optimizer"] == {"name": "adamw", "lr": 0.003, "weight_decay": 0.05}
    assert new["scheduler"] == {"name": "cosine", "warmup_fraction": 0.1}
    assert new["clip_frames"] == 16 and "arch" not in new and "lr" not in new
    assert upgrade_hparams(new) == new  # today's hyper-parameters are returned as they are
    ClassificationTask(**new)  # and build the task


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    states = get_rng_states()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    path = tmp_path / "rng.pt"
    torch.save(states, path)
    set_rng_states(torch.load(path, weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


# --------------------------------------------------------------------------------------------
# A short fit: both modes logged, weights_only checkpoints, progress bar throughput
# --------------------------------------------------------------------------------------------
def _loaders(train_frames: int = 4, eval_frames: int = 30):
    train = DataLoader(RandomClips(8, train_frames), batch_size=4, shuffle=True)
    val = DataLoader(RandomClips(4, eval_frames), batch_size=2)
    return train, val


def test_fit_logs_top1_top5_of_both_modes_and_the_gap(tmp_path: Path, capsys):
    module = tiny(clip_frames=4)
    train, val = _loaders()
    bar = ThroughputProgressBar()
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        callbacks=[bar],
        default_root_dir=tmp_path,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(module, train, val)
    metrics = trainer.callback_metrics
    for key in (
        "val/clip/top1",
        "val/clip/top4",  # top-5 is capped at the number of classes
        "val/continual/top1",
        "val/continual/top4",
        "val/gap/top1",
        "val/clip/loss",
        "val/continual/steps_per_s",
        "train/loss",
    ):
        assert key in metrics, key
    gap = metrics["val/clip/top1"] - metrics["val/continual/top1"]
    assert float(metrics["val/gap/top1"]) == pytest.approx(float(gap))
    assert float(metrics["val/continual/steps_per_s"]) > 0
    shown = "".join(capsys.readouterr())
    assert "clips/s" in shown and "steps/s" in shown
    # test mode logs the same keys under test/
    trainer.test(module, val)
    assert "test/continual/top1" in trainer.callback_metrics
    # a checkpoint: primitives + tensors only
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["hyper_parameters"]["model"]["name"] == "cox3d_s"
    assert "rng_states" in checkpoint
    again = ClassificationTask.from_checkpoint(str(path), continual_eval=False)
    assert again.modes == ("clip",)
    for (k, a), b in zip(module.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


# --------------------------------------------------------------------------------------------
# Atomic checkpoints
# --------------------------------------------------------------------------------------------
class _Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("cannot save this")


def test_atomic_checkpoint_io_replaces_or_keeps_the_old_file(tmp_path: Path):
    io = AtomicCheckpointIO()
    path = tmp_path / "ckpts" / "last.ckpt"
    io.save_checkpoint({"w": torch.ones(3), "step": 1}, path)
    assert torch.equal(io.load_checkpoint(path)["w"], torch.ones(3))
    io.save_checkpoint({"w": torch.zeros(3), "step": 2}, path)
    assert io.load_checkpoint(path)["step"] == 2
    with pytest.raises(pickle.PicklingError):
        io.save_checkpoint({"w": torch.full((3,), 7.0), "bad": _Unpicklable()}, path)
    assert io.load_checkpoint(path)["step"] == 2  # the previous checkpoint is intact
    assert sorted(os.listdir(path.parent)) == ["last.ckpt"]  # no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)
    io.remove_checkpoint(path)
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        io.load_checkpoint(path)


def test_atomic_checkpoint_io_refuses_pickled_objects(tmp_path: Path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state": torch.nn.Linear(2, 2)}, path)  # a pickled module, not weights
    with pytest.raises(pickle.UnpicklingError):
        AtomicCheckpointIO().load_checkpoint(path)
