"""cozoo.tasks.VideoClassifier and cozoo.callbacks: the two evaluation modes, hyper-parameters,
checkpoints (atomic, weights_only) and the throughput progress bar."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, Dataset

from cozoo.callbacks import AtomicCheckpointIO, ThroughputProgressBar
from cozoo.tasks import VideoClassifier
from cozoo.tasks.classification import get_rng_states, set_rng_states

SIZE = 32  # tiny frames: the ResNets/X3Ds reduce 32x32 to 1x1


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: these tiny models gain nothing from two, and on a shared 2-core
    machine two spinning OpenMP threads per process make everything several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(**kwargs) -> VideoClassifier:
    """CoX3D-S with a 2-frame head pool: delay 27 + 2 = 29."""
    args = dict(arch="cox3d_s", num_classes=4, pool_size=2, dropout=0.0, optimizer="adamw", lr=1e-3)
    args.update(kwargs)
    return VideoClassifier(**args)


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
    assert logits.shape == (2, 4)
    # by hand: frame by frame from a clean state, the output of the last frame
    module.model.clean_state()
    with torch.no_grad():
        outs = [module.model.forward_step(video[:, :, t]) for t in range(33)]
    assert all(o is None for o in outs[:29]) and all(o is not None for o in outs[29:])
    torch.testing.assert_close(logits, outs[-1], rtol=1e-4, atol=1e-5)
    # a clean state per call: the same clip gives the same answer again
    torch.testing.assert_close(module.forward_continual(video), logits)


def test_continual_mode_averages_predict_steps_and_refuses_short_clips():
    module = tiny(predict_steps=3).eval()
    assert module.required_frames() == 32
    video = torch.randn(1, 3, 32, SIZE, SIZE)
    module.model.clean_state()
    with torch.no_grad():
        outs = module.model.forward_steps(video)  # (1, 4, 3): steps 29, 30, 31
    torch.testing.assert_close(module.forward_continual(video), outs.mean(dim=2))
    with pytest.raises(ValueError, match="continual_frames=32"):
        module.forward_continual(video[:, :, :31])


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


def test_hyper_parameters_are_primitives_and_validated():
    module = tiny()
    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in module.hparams.values())
    with pytest.raises(TypeError, match="primitive"):
        tiny(arch=["cox3d_s"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optimizer"):
        tiny(optimizer="lamb")
    with pytest.raises(ValueError, match="clip_align"):
        tiny(clip_align="start")
    with pytest.raises(ValueError, match="at least one"):
        tiny(clip_eval=False, continual_eval=False)


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
    assert checkpoint["hyper_parameters"]["arch"] == "cox3d_s"
    assert "rng_states" in checkpoint
    again = VideoClassifier.from_checkpoint(str(path), continual_eval=False)
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
