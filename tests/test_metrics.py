"""``cozoo.metrics.PerFrameMAP`` against scikit-learn: both protocols on tie-free data, the
Ambiguous column, tied scores, the calibrated AP, and the state across updates and processes."""

from __future__ import annotations

import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.metrics import average_precision_score

from cozoo.metrics import PerFrameMAP, average_precision


def _data(n: int = 600, seed: int = 0, ambiguous_share: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 22, generator=g) * 2.0  # continuous: no ties
    labels = torch.randint(1, 21, (n,), generator=g)
    labels[torch.rand(n, generator=g) < 0.5] = 0  # half background
    labels[torch.rand(n, generator=g) < ambiguous_share] = 21
    labels[labels == 7] = 8  # class 7 has no positive: skipped
    return logits, torch.eye(22)[labels], labels


def _sklearn_map(logits, labels, protocol: str, per_class: bool = False):
    keep = labels != 21
    logits, labels = logits[keep], labels[keep]
    cols = 21 if protocol == "oadtr" else 22
    scores = torch.softmax(logits[:, :cols].double(), dim=1).numpy()
    aps = {}
    for c in range(1, 21):
        y = (labels == c).numpy()
        if y.any():
            aps[c] = average_precision_score(y, scores[:, c])
    return aps if per_class else float(np.mean(list(aps.values())))


@pytest.mark.parametrize("protocol", ["lstr", "oadtr"])
def test_map_equals_sklearn_on_tie_free_data(protocol):
    logits, target, labels = _data()
    metric = PerFrameMAP(protocol=protocol)
    for chunk in range(3):  # several updates == one pool
        s = slice(chunk * 200, (chunk + 1) * 200)
        metric.update(logits[s], target[s])
    value = metric.compute()
    assert value.ndim == 0 and 0.0 <= float(value) <= 1.0
    assert float(value) == pytest.approx(_sklearn_map(logits, labels, protocol), abs=1e-6)
    per_class = metric.per_class()
    expected = _sklearn_map(logits, labels, protocol, per_class=True)
    assert sorted(int(c) for c in torch.nonzero(~per_class.isnan())) == sorted(expected)
    for c, ap in expected.items():
        assert float(per_class[c]) == pytest.approx(ap, abs=1e-6)
    assert math.isnan(per_class[0]) and math.isnan(per_class[21]) and math.isnan(per_class[7])


def test_the_ambiguous_column_matters_and_ambiguous_frames_are_dropped():
    logits, target, labels = _data(seed=1)
    g = torch.Generator().manual_seed(5)
    logits[:, 21] = 4.0 * torch.randn(len(logits), generator=g)  # a wild Ambiguous logit
    values = {}
    for protocol in ("lstr", "oadtr"):
        metric = PerFrameMAP(protocol=protocol)
        metric.update(logits, target)
        values[protocol] = float(metric.compute())
        assert values[protocol] == pytest.approx(_sklearn_map(logits, labels, protocol), abs=1e-6)
    assert abs(values["lstr"] - values["oadtr"]) > 1e-3
    # the Ambiguous logit does not change the oadtr scores at all
    shifted = logits.clone()
    shifted[:, 21] = 0.0
    metric = PerFrameMAP(protocol="oadtr")
    metric.update(shifted, target)
    assert float(metric.compute()) == pytest.approx(values["oadtr"], abs=1e-7)
    # frames whose truth is Ambiguous change nothing, whatever their scores
    extra = torch.randn(50, 22, generator=g) * 5.0
    for protocol in ("lstr", "oadtr"):
        metric = PerFrameMAP(protocol=protocol)
        metric.update(torch.cat([logits, extra]), torch.cat([target, torch.eye(22)[[21] * 50]]))
        assert float(metric.compute()) == pytest.approx(values[protocol], abs=1e-7)


def test_ties_are_grouped_like_sklearn():
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        scores = torch.randint(0, 6, (300,), generator=g).double() / 5.0  # many ties
        positives = torch.rand(300, generator=g) < 0.3
        assert float(average_precision(scores, positives)) == pytest.approx(
            average_precision_score(positives.numpy(), scores.numpy()), abs=1e-12
        )
    # tied softmax scores through the metric: every logits row three times, other targets
    logits, _, _ = _data(n=120, seed=3, ambiguous_share=0.0)
    logits = logits.repeat_interleave(3, dim=0)
    labels = torch.randint(0, 21, (len(logits),), generator=g)
    metric = PerFrameMAP(protocol="lstr")
    metric.update(logits, torch.eye(22)[labels])
    assert float(metric.compute()) == pytest.approx(_sklearn_map(logits, labels, "lstr"), abs=1e-6)


def test_calibrated_ap_is_the_weighted_precision_at_each_positive():
    g = torch.Generator().manual_seed(4)
    scores = torch.rand(400, generator=g).double()
    positives = torch.rand(400, generator=g) < 0.2
    order = torch.argsort(scores, descending=True)
    hits = positives[order].double()
    tp, fp = torch.cumsum(hits, 0), torch.cumsum(1 - hits, 0)
    w = (~positives).sum().double() / positives.sum()
    expected = (w * tp / (w * tp + fp))[hits.bool()].mean()
    got = average_precision(scores, positives, calibrated=True)
    assert float(got) == pytest.approx(float(expected), abs=1e-12)
    assert float(got) > float(average_precision(scores, positives))  # w > 1 lifts precision
    logits, target, _ = _data(seed=6)
    plain, calibrated = PerFrameMAP(), PerFrameMAP(calibrated=True)
    plain.update(logits, target)
    calibrated.update(logits, target)
    assert float(calibrated.compute()) > float(plain.compute())


def test_states_concatenate_across_processes_and_reset():
    logits, target, labels = _data(seed=7)
    a, b = PerFrameMAP(protocol="oadtr"), PerFrameMAP(protocol="oadtr")
    a.update(logits[:300], target[:300])
    b.update(logits[300:], target[300:])
    a.merge_state(b)  # what the "cat" reduction does across DDP ranks
    assert float(a.compute()) == pytest.approx(_sklearn_map(logits, labels, "oadtr"), abs=1e-6)
    assert a.scores[0].dtype == torch.float32
    a.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(float(a.compute()))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="protocol"):
        PerFrameMAP(protocol="thumos")
    with pytest.raises(ValueError, match=r"\(N, 22\)"):
        PerFrameMAP().update(torch.zeros(4, 21), torch.zeros(4, 21))


def test_without_an_ambiguous_class_every_column_is_softmaxed_and_no_frame_dropped():
    g = torch.Generator().manual_seed(8)
    logits = torch.randn(200, 5, generator=g)
    labels = torch.randint(0, 5, (200,), generator=g)
    metric = PerFrameMAP(num_classes=5, ambiguous=None)
    metric.update(logits, torch.eye(5)[labels])
    scores = torch.softmax(logits.double(), dim=1).numpy()
    expected = np.mean(
        [average_precision_score((labels == c).numpy(), scores[:, c]) for c in range(1, 5)]
    )
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-6)


def _ddp_rank(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        logits, target, _ = _data(n=301, seed=9)
        part = slice(0, 200) if rank == 0 else slice(200, 301)  # uneven shares
        metric = PerFrameMAP(protocol="lstr")
        metric.update(logits[part], target[part])
        results[rank] = (float(metric.compute()), metric.per_class().tolist())
    finally:
        dist.destroy_process_group()


def test_two_ddp_processes_compute_the_map_of_all_their_frames():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_ddp_rank, args=(port, results), nprocs=2)
    logits, _, labels = _data(n=301, seed=9)
    expected = _sklearn_map(logits, labels, "lstr")
    assert results[0][0] == pytest.approx(expected, abs=1e-6)
    assert results[1][0] == pytest.approx(expected, abs=1e-6)
    assert np.allclose(results[0][1], results[1][1], equal_nan=True)
