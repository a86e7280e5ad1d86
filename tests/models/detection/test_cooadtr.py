"""CoOadTR-b1/b2: the step equals the clip forward on its window at the window's positional
offset, over long streams and across snapshots; per-stream reset; the offset is explicit
state; parameters and published MACs equal the meta; checkpoints in the original and in
``torch.nn`` key layouts load."""

from __future__ import annotations

import pytest
import torch

from cozoo.co.flops import complexity
from cozoo.models import StateDictMismatchError, create_model, get_model_weights, load_weights
from cozoo.models.detection._published import FEATURES, num_params
from cozoo.models.detection.counting import published_step_macs

# narrow networks with the real layer plan: D=12, E=16, 2 heads, a window of 8
TINY = dict(feature_dim=12, embed_dim=16, heads=2, ff_dim=16, window=8)
WINDOW, ROWS = 8, 13
MODELS = ("cooadtr_b1", "cooadtr_b2")


def tiny(name: str, pe: str = "fixed", rows: int = ROWS, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(name, pe=pe, pe_rows=rows, **TINY).eval()


@pytest.fixture(scope="module")
def stream() -> torch.Tensor:
    return torch.randn(2, 12, 500, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("pe", ["fixed", "learned"])
@pytest.mark.parametrize("name", MODELS)
def test_every_step_of_a_long_stream_is_the_clip_forward_of_its_window(name, pe, stream):
    model = tiny(name, pe)
    with torch.no_grad():
        steps = [model.forward_step(stream[:, :, t]) for t in range(stream.shape[2])]
        assert all(s is None for s in steps[: WINDOW - 1])
        windows = stream.unfold(2, WINDOW, 1).permute(0, 2, 1, 3)  # (N, T', D, W)
        n, count = windows.shape[:2]
        starts = torch.arange(count).repeat(n)  # window t starts at stream step t
        clips = model(windows.reshape(n * count, 12, WINDOW), offset=starts % ROWS)
    expected = clips[:, :, 0].reshape(n, count, -1)
    got = torch.stack(steps[WINDOW - 1 :], 1)
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-6)  # no drift over 500 steps


@pytest.mark.parametrize("name", MODELS)
def test_snapshots_resets_and_update_state_false(name, stream):
    model = tiny(name, "learned")
    x = stream[:, :, :40]
    with torch.no_grad():
        for t in range(20):
            model.forward_step(x[:, :, t])
        snapshot = model.get_state()
        peek = model.forward_step(x[:, :, 20], update_state=False)
        after = [model.forward_step(x[:, :, t]) for t in range(20, 40)]
        torch.testing.assert_close(after[0], peek, rtol=0, atol=0)
        model.set_state(snapshot)
        again = [model.forward_step(x[:, :, t]) for t in range(20, 40)]
        torch.testing.assert_close(torch.stack(again), torch.stack(after), rtol=0, atol=0)
        # stream 1 restarts at step 40; stream 0 goes on
        model.clean_state(streams=[1])
        mixed = [model.forward_step(stream[:, :, t]) for t in range(40, 40 + WINDOW + 3)]
        alone = tiny(name, "learned")
        solo = [alone.forward_step(stream[1:, :, t]) for t in range(40, 40 + WINDOW + 3)]
    assert torch.isnan(mixed[0][1]).all() and not torch.isnan(mixed[0][0]).any()
    torch.testing.assert_close(mixed[-1][1:], solo[-1], rtol=0, atol=2e-6)


def test_the_positional_offset_recycles_in_training_only():
    model = tiny("cooadtr_b1")
    clip = torch.randn(3, 12, WINDOW)
    with torch.no_grad():
        first, second = model(clip), model(clip)
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # evaluation: no drift
    assert int(model.position.state_index) == 0
    model.train()
    model(clip)
    model(clip)
    assert int(model.position.state_index) == 2
    model.clean_state()
    assert int(model.position.state_index) == 0


def test_bad_inputs_name_the_module_and_the_shapes():
    model = tiny("cooadtr_b1")
    with pytest.raises(ValueError, match=r"CoOadTR: expected a step \(N, D\) with D=12.*\(2, 11\)"):
        model.forward_step(torch.zeros(2, 11))
    with pytest.raises(ValueError, match=r"CoOadTR: expected a clip \(N, D, T\) with D=12"):
        model(torch.zeros(2, 12))
    with pytest.raises(ValueError, match="pe_rows=7 < window=8"):
        create_model("cooadtr_b1", pe_rows=7, **TINY)


@pytest.mark.parametrize("name", MODELS)
def test_parameters_are_the_published_counts_for_every_feature_set_and_pe(name):
    # the spec's Table: b1 9,468,950 (ANet, fixed PE) ... b2 16,945,174 (Kinetics, learned 127)
    published = {
        ("cooadtr_b1", 3072, "fixed", 127): 9_468_950,
        ("cooadtr_b1", 3072, "learned", 64): 9_534_486,
        ("cooadtr_b1", 3072, "learned", 127): 9_598_998,
        ("cooadtr_b1", 4096, "fixed", 127): 10_517_526,
        ("cooadtr_b1", 4096, "learned", 64): 10_583_062,
        ("cooadtr_b1", 4096, "learned", 127): 10_647_574,
        ("cooadtr_b2", 3072, "fixed", 127): 15_766_550,
        ("cooadtr_b2", 3072, "learned", 64): 15_832_086,
        ("cooadtr_b2", 3072, "learned", 127): 15_896_598,
        ("cooadtr_b2", 4096, "fixed", 127): 16_815_126,
        ("cooadtr_b2", 4096, "learned", 64): 16_880_662,
        ("cooadtr_b2", 4096, "learned", 127): 16_945_174,
    }
    for (model, dim, pe, rows), count in published.items():
        if model != name:
            continue
        net = create_model(name, feature_dim=dim, pe=pe, pe_rows=rows).to("meta")
        assert sum(p.numel() for p in net.parameters()) == count, (dim, pe, rows)
    for member in get_model_weights(name):
        meta = member.meta
        dim = meta.model_kwargs["feature_dim"]
        assert meta.num_params == num_params(name, dim)
        net = create_model(name, feature_dim=dim).to("meta")
        assert sum(p.numel() for p in net.parameters()) == meta.num_params
        if dim in (7168, 8192):  # audio: +4096 x 1024 in the input projection only
            assert meta.num_params - num_params(name, dim - 4096) == 4096 * 1024


@pytest.mark.parametrize("name", MODELS)
def test_published_step_macs_are_the_meta(name):
    layers = 1 if name == "cooadtr_b1" else 2
    for member in get_model_weights(name):
        dim = member.meta.model_kwargs["feature_dim"]
        assert member.meta.macs_per_step.value == round(published_step_macs(layers, dim) / 1e9, 6)
        model = create_model(name, feature_dim=dim).to("meta")
        assert model.published_step_macs() == published_step_macs(layers, dim)
    assert set(m.name for m in get_model_weights(name)) == set(FEATURES)


def test_the_b2_step_projects_one_query_in_its_second_layer(monkeypatch):
    """The original projects q, k and v of all T tokens in layer 2 and keeps one query; a cozoo
    step hands layer 2's attention one query token (and all T keys/values)."""
    model = tiny("cooadtr_b2")
    calls = []
    original = torch.nn.functional.multi_head_attention_forward

    def recording(query, key, value, *args, **kwargs):
        calls.append((tuple(query.shape), tuple(key.shape)))
        return original(query, key, value, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "multi_head_attention_forward", recording)
    with torch.no_grad():
        for _ in range(WINDOW):
            model.forward_step(torch.randn(1, 12))
    # batch-first inputs reach torch's function as (T, N, E)
    assert calls == [((1, 1, TINY["embed_dim"]), (WINDOW, 1, TINY["embed_dim"]))]
    e = TINY["embed_dim"]
    ours = complexity(model, (1, 12, WINDOW)).step_macs
    b1 = complexity(tiny("cooadtr_b1"), (1, 12, WINDOW)).step_macs
    assert ours > b1 + WINDOW * 2 * e * e  # layer 2 still projects k and v of every token


def _as_continual_transformers(state, layers):
    """cozoo keys -> the original code's (the inverse of the documented remap)."""
    single = {"self_attn.": "0.1.", "norm1.": "1.fn.", "linear1.": "2.1.0.", "linear2.": "2.1.3.",
              "norm2.": "3.fn."}  # fmt: skip
    retro = {"self_attn.": "0.0.1.", "norm1.": "0.1.fn.0.", "linear1.": "0.1.fn.1.fn.0.",
             "linear2.": "0.1.fn.1.fn.3.", "norm2.": "0.1.fn.2."}  # fmt: skip
    top = {"embedding.": "0.", "position.pe.": "1.pe.", "norm.": "4.fn.", "head.": "5."}
    out = {}
    for key, value in state.items():
        for old, new in top.items():
            if key.startswith(old):
                out[new + key[len(old) :]] = value
                break
        else:
            _, layer, rest = key.split(".", 2)
            table = single if layers == 1 else (retro if layer == "0" else single)
            prefix = "3." if layers == 1 or layer == "0" else "3.1.fn."
            part = next(p for p in table if rest.startswith(p))
            out[prefix + table[part] + rest[len(part) :]] = value
    return out


@pytest.mark.parametrize("name", MODELS)
def test_checkpoints_in_the_original_and_torch_layouts_load(name, tmp_path):
    layers = 1 if name == "cooadtr_b1" else 2
    source = tiny(name, "learned", seed=3)
    state = source.state_dict()
    original = _as_continual_transformers(state, layers)
    assert any(
        k.startswith("3.0.1.in_proj_weight" if layers == 1 else "3.0.0.1.") for k in original
    )
    torch_layout = {k.replace("encoder.", "encoder.layers.", 1): v for k, v in state.items()}
    clip = torch.randn(2, 12, WINDOW)
    for layout in (original, torch_layout):
        path = tmp_path / "checkpoint.pt"
        torch.save(layout, path)
        loaded = load_weights(tiny(name, "learned", seed=4), str(path))
        with torch.no_grad():
            torch.testing.assert_close(loaded(clip), source(clip), rtol=0, atol=0)
    broken = dict(original)
    broken["3.9.fn.weight"] = broken.pop("4.fn.weight")
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(StateDictMismatchError, match="3.9.fn.weight"):
        load_weights(tiny(name, "learned"), str(tmp_path / "broken.pt"))
