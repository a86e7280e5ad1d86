"""The generic pieces every dataset family builds on (``cozoo.data._base``, ``_scan``, ``_cache``),
exercised through a tiny fake family defined here.

The fake "digits" format: ``root/<split>.txt`` lists ``<class>/<name>.txt`` files, one sample
per file, each holding ``LENGTH`` whitespace-separated numbers (a sequence rising for class
``up``, falling for class ``down``). Without a root, its generated sample in that format is
written to the cache and read through the same code.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from cozoo.data import _cache, _scan
from cozoo.data._base import RootOrSampleDataModule, SampleInfo

CLASSES = ("down", "up")
LENGTH = 8
SIZES = {"tiny": 3, "small": 10}  # samples per class and split
SPLITS = ("train", "val")


# --------------------------------------------------------------------------------------------
# The fake family
# --------------------------------------------------------------------------------------------
def write_digits_sample(root: Path, size: str, seed: int) -> int:
    """Write the sample in the digits format (marker last); returns the number of samples."""
    files: Dict[str, int] = {}
    for split_id, split in enumerate(SPLITS):
        listed = []
        for label, name in enumerate(CLASSES):
            (root / name).mkdir(parents=True, exist_ok=True)
            for k in range(SIZES[size]):
                rng = np.random.default_rng((seed, split_id, label, k))
                values = np.sort(rng.uniform(0, 10, LENGTH))[:: 1 if name == "up" else -1]
                rel = f"{name}/{split}-{k:03d}.txt"
                (root / rel).write_text(" ".join(f"{v:.4f}" for v in values))
                files[rel] = (root / rel).stat().st_size
                listed.append(rel)
        (root / f"{split}.txt").write_text("\n".join(listed) + "\n")
        files[f"{split}.txt"] = (root / f"{split}.txt").stat().st_size
    _cache.write_marker(root, {"format": "digits", "seed": seed, "files": files})
    return len(files) - len(SPLITS)


def read_digits(path: str) -> torch.Tensor:
    values = [float(v) for v in Path(path).read_text().split()]
    if len(values) != LENGTH:
        raise ValueError(f"{len(values)} numbers, expected {LENGTH}")
    return torch.tensor(values)


def probe_digits(path: str) -> Optional[str]:
    try:
        read_digits(path)
        return None
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"


class DigitsDataset(Dataset):
    """Item -> ``{"sequence": (LENGTH,) float, "label": int, "path": str}``."""

    def __init__(self, records: List[Dict[str, Any]]) -> None:
        self.records = records
        self.failed: Dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        rec = self.records[i]
        return {"sequence": read_digits(rec["path"]), "label": rec["label"], "path": rec["path"]}


class DigitsDataModule(RootOrSampleDataModule):
    dataset_name = "Digits"
    input_key = "sequence"
    item_name = "digit sequence"
    sample_sizes = SIZES
    samples_written = 0  # counts actual generations (class-wide)

    def __init__(self, root: Optional[str] = None, **kwargs: Any) -> None:
        args = dict(cache_dir=None, sample_size="tiny", seed=0, batch_size=4, num_workers=0)
        super().__init__(root=root, **{**args, **kwargs})

    def ensure_sample(self) -> Path:
        root = Path(self.hparams.cache_dir) / f"{self.hparams.sample_size}-seed{self.hparams.seed}"

        def write(tmp: Path) -> int:
            type(self).samples_written += 1
            return write_digits_sample(tmp, self.hparams.sample_size, self.hparams.seed)

        expected = {"format": "digits", "seed": self.hparams.seed}
        _cache.build_atomically(root, write, lambda r: _cache.marker_matches(r, expected))
        return root

    def describe_sample(self) -> SampleInfo:
        count = SIZES[self.hparams.sample_size] * len(CLASSES) * len(SPLITS)
        return SampleInfo(count, "sequences", CLASSES, "trend", "digits format", "/data/digits")

    def has_split(self, split: str) -> bool:
        return (self.data_root / f"{split}.txt").is_file()

    def list_class_names(self, root: Path) -> List[str]:
        return sorted(p.name for p in root.iterdir() if p.is_dir())

    def scan_split(self, split: str) -> _scan.FileScanReport:
        root = self.data_root
        rels = (root / f"{split}.txt").read_text().split()
        present = [str(root / r) for r in rels if (root / r).is_file()]
        missing = [(str(root / r), "missing file") for r in rels if not (root / r).is_file()]
        reasons = _scan.probe_files(present, probe_digits, label=f"{root} [{split}]")
        names = self.list_class_names(root)
        ok = [
            {"path": p, "label": names.index(Path(p).parent.name)}
            for p, why in zip(present, reasons)
            if why is None
        ]
        unreadable = [(p, why) for p, why in zip(present, reasons) if why is not None]
        report = _scan.FileScanReport(str(root), split, "digits", names, ok, missing, unreadable)
        report.log_summary(logging.getLogger(__name__))
        return report

    def build_dataset(self, split: str, report: _scan.ScanSummary) -> Dataset:
        return DigitsDataset(list(report.ok))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A cache holding the tiny digits sample, written once by a first module."""
    cache = tmp_path_factory.mktemp("cache")
    DigitsDataModule(cache_dir=str(cache)).prepare_data()
    return cache


def values(loader) -> torch.Tensor:
    return torch.cat([b["sequence"] for b in loader])


# --------------------------------------------------------------------------------------------
# Root or generated sample
# --------------------------------------------------------------------------------------------
def test_generated_sample_is_written_once_and_announced(cache, caplog):
    written = DigitsDataModule.samples_written
    dm = DigitsDataModule(cache_dir=str(cache))
    assert dm.is_generated_sample and dm.num_classes == 2 and dm.class_names == list(CLASSES)
    with caplog.at_level(logging.WARNING):
        dm.prepare_data()
    assert DigitsDataModule.samples_written == written  # already in the cache: not rewritten
    root = cache / "tiny-seed0"
    assert dm.data_root == root and (root / _cache.MARKER).is_file()
    banner = caplog.text
    assert "NO data.root GIVEN: USING A GENERATED SAMPLE, NOT DIGITS" in banner
    assert "12 synthetic sequences, 2 trend classes (down, up)" in banner
    assert "digits format at" in banner and str(root) in banner
    assert "Pass data.root=/data/digits to use the real dataset." in banner
    assert not list(cache.glob(".tmp-*"))


def test_sample_and_real_root_are_read_by_the_same_code(cache, tmp_path, caplog):
    sample = DigitsDataModule(cache_dir=str(cache))
    sample.setup("fit")
    batch = next(iter(sample.train_dataloader()))
    assert batch[sample.input_key].shape == (4, LENGTH) and batch["label"].dtype == torch.int64
    assert len(sample.datasets["train"]) == 6 and set(sample.datasets) == {"train", "val"}

    real_root = tmp_path / "digits"
    shutil.copytree(cache / "tiny-seed0", real_root)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        real = DigitsDataModule(str(real_root))
        real.setup("validate")
    assert not real.is_generated_sample and "GENERATED SAMPLE" not in caplog.text
    assert real.data_root == real_root.resolve() and real.num_classes == 2
    assert set(real.datasets) == {"val"}
    assert torch.equal(values(real.val_dataloader()), values(sample.val_dataloader()))
    assert real.skipped == {"val": {"missing": 0, "unreadable": 0, "failed": 0}}


def test_corrupt_and_missing_files_are_reported_counted_and_skipped(cache, tmp_path, caplog):
    root = tmp_path / "digits"
    shutil.copytree(cache / "tiny-seed0", root)
    corrupt, gone = root / "up" / "train-001.txt", root / "down" / "train-002.txt"
    corrupt.write_text("1 2 three")
    gone.unlink()
    dm = DigitsDataModule(str(root))
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert str(corrupt.resolve()) in caplog.text and str(gone.resolve()) in caplog.text
    assert "(these files are skipped)" in caplog.text
    assert dm.skipped["train"] == {"missing": 1, "unreadable": 1, "failed": 0}
    assert dm.scan_reports["train"].counts == {"listed": 6, "ok": 4, "missing": 1, "unreadable": 1}
    assert len(values(dm.train_dataloader())) == 4  # the two bad files are skipped

    for path in (root / "up").glob("val-*"):
        path.write_text("")
    for path in (root / "down").glob("val-*"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="no readable digit sequence"):
        DigitsDataModule(str(root)).setup("validate")


def test_failed_items_and_every_split_present(cache):
    dm = DigitsDataModule(cache_dir=str(cache))
    dm.setup()  # no stage: every split the root has
    assert set(dm.datasets) == {"train", "val"}
    dm.datasets["val"].failed["some/path"] = "broke while loading"
    assert dm.skipped["val"] == {"missing": 0, "unreadable": 0, "failed": 1}
    with pytest.raises(FileNotFoundError):
        dm.test_dataloader()  # the digits format has no test split: its scan cannot list it


def test_arguments_and_hooks_are_checked(tmp_path):
    with pytest.raises(ValueError, match="sample_size must be one of"):
        DigitsDataModule(cache_dir=str(tmp_path), sample_size="huge")
    DigitsDataModule(str(tmp_path), sample_size="huge")  # a real root needs no sample size
    with pytest.raises(TypeError, match="abstract"):
        RootOrSampleDataModule(
            root=None, cache_dir=None, sample_size="x", seed=0, batch_size=1, num_workers=0
        )
    dm = DigitsDataModule(cache_dir=str(tmp_path), seed=3, batch_size=2)
    assert dm.hparams == {
        "root": None,
        "cache_dir": str(tmp_path),
        "sample_size": "tiny",
        "seed": 3,
        "batch_size": 2,
        "num_workers": 0,
    }


def test_kinetics_names_its_input():
    from cozoo.data.kinetics import KineticsDataModule

    assert KineticsDataModule.input_key == "video"
    assert issubclass(KineticsDataModule, RootOrSampleDataModule)


# --------------------------------------------------------------------------------------------
# Cache folder and atomic writing
# --------------------------------------------------------------------------------------------
def test_cache_root_honours_cozoo_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("COZOO_CACHE", str(tmp_path / "c"))
    assert _cache.cache_root() == tmp_path / "c"
    monkeypatch.delenv("COZOO_CACHE")
    assert _cache.cache_root() == Path.home() / ".cache" / "cozoo"


def test_interrupted_or_outdated_writes_are_rebuilt(tmp_path, caplog):
    root = tmp_path / "cache" / "tiny-seed0"
    expected = {"format": "digits", "seed": 0}

    def complete(folder: Path) -> bool:
        return _cache.marker_matches(folder, expected)

    def crash(tmp: Path) -> None:
        (tmp / "half.txt").write_text("1")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _cache.build_atomically(root, crash, complete)
    assert not root.exists() and not list(root.parent.glob(".tmp-*"))

    stale, fresh = root.parent / ".tmp-tiny-seed0-killed", root.parent / ".tmp-tiny-seed0-busy"
    stale.mkdir()
    fresh.mkdir()
    old = time.time() - 2 * _cache.STALE_TEMP_AGE_S
    os.utime(stale, (old, old))
    root.mkdir()  # a sample of another seed where ours belongs
    _cache.write_marker(root, {"format": "digits", "seed": 1, "files": {}})
    with caplog.at_level(logging.WARNING):
        count = _cache.build_atomically(root, lambda t: write_digits_sample(t, "tiny", 0), complete)
    assert count == 12 and complete(root)
    assert "incomplete or outdated generated sample" in caplog.text
    assert not stale.exists() and fresh.exists()  # a young temp may be another writer's
    assert _cache.build_atomically(root, lambda t: pytest.fail("rewritten"), complete) is None

    victim = root / "up" / "train-000.txt"
    victim.write_text(victim.read_text()[:-1])  # another size than the marker records
    assert not complete(root)
    (root / _cache.MARKER).write_text("[1, 2]")
    assert _cache.read_marker(root) is None and not complete(root)


# --------------------------------------------------------------------------------------------
# The scan report and probing
# --------------------------------------------------------------------------------------------
def test_scan_report_counts_and_summary():
    report = _scan.FileScanReport(
        "/r",
        "val",
        "digits",
        ["a", "b"],
        ok=[1, 2, 3],
        missing=[(f"/r/m{i}", "missing file") for i in range(3)],
        unreadable=[("/r/u", "ValueError: bad")],
    )
    assert report.num_listed == 7
    assert report.counts == {"listed": 7, "ok": 3, "missing": 3, "unreadable": 1}
    assert report.summary(max_paths=2).splitlines() == [
        "scan /r [val] (digits, 2 classes): 7 listed, 3 ok, 3 missing, 1 unreadable",
        "  missing: /r/m0 (missing file)",
        "  missing: /r/m1 (missing file)",
        "  ... and 1 more missing",
        "  unreadable: /r/u (ValueError: bad)",
    ]
    assert str(report) == report.summary() and "/r/m2" in report.summary(None)


def test_probe_results_are_cached_by_size_and_mtime(tmp_path):
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.txt"))
        Path(paths[-1]).write_text(" ".join(["1"] * (LENGTH if i else 3)))
    cache_file = _scan.scan_cache_file(tmp_path / "c", "digits_scans", tmp_path, "val")
    assert cache_file.parent == tmp_path / "c" / "scans" and cache_file.name.endswith("-val.json")

    probed: List[str] = []

    def probe(path: str) -> Optional[str]:
        probed.append(path)
        return probe_digits(path)

    first = _scan.probe_files(paths, probe, cache_file=cache_file, workers=2)
    assert first[0].startswith("ValueError") and first[1:] == [None, None]
    assert sorted(probed) == paths
    probed.clear()
    Path(paths[0]).write_text(" ".join(["2"] * LENGTH))  # fixed: another size
    assert _scan.probe_files(paths, probe, cache_file=cache_file) == [None, None, None]
    assert probed == [paths[0]]  # the unchanged files answer from the cache
