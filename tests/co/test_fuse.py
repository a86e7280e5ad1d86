"""``co.fuse_batch_norm``: folded networks compute the same function in every call mode."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from cozoo import co


def _randomise_norms(module: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters (fresh ones fold to identity)."""
    gen = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen))
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.randn(n, generator=gen))
                m.bias.copy_(torch.randn(n, generator=gen))


def _norms(module: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def _net() -> co.Sequential:
    net = co.Sequential(
        OrderedDict(
            conv1=co.Conv3d(3, 6, (3, 3, 3), padding=(1, 1, 1), bias=False),
            norm1=nn.BatchNorm3d(6),
            relu=nn.ReLU(),
            conv2=co.Conv3d(6, 6, (3, 1, 1), padding=(1, 0, 0), groups=6),
            norm2=nn.BatchNorm3d(6),
            pool=co.AvgPool3d((2, 1, 1), stride=1),
            norm3=nn.BatchNorm3d(6),  # after a pool: must stay
        )
    )
    _randomise_norms(net)
    return net.eval()


def test_fused_network_equals_the_original_in_every_mode():
    net = _net()
    fused = co.fuse_batch_norm(net)
    assert _norms(net) == 3  # the original is untouched
    assert _norms(fused) == 1 and list(fused._modules) == [
        "conv1",
        "relu",
        "conv2",
        "pool",
        "norm3",
    ]
    assert fused.delay == net.delay and fused.receptive_field == net.receptive_field
    x = torch.randn(2, 3, 8, 5, 4)
    with torch.no_grad():
        expected = net(x)
        assert_close(fused(x), expected, atol=1e-5, rtol=1e-5)
        assert_close(fused.forward_steps(x, pad_end=True), expected, atol=1e-5, rtol=1e-5)
        net.clean_state()
        fused.clean_state()
        for t in range(8):
            a, b = net.forward_step(x[:, :, t]), fused.forward_step(x[:, :, t])
            assert (a is None) == (b is None)
            if a is not None:
                assert_close(b, a, atol=1e-5, rtol=1e-5)


def test_inplace_torch_sequential_and_refusals():
    net = _net()
    assert co.fuse_batch_norm(net, inplace=True) is net and _norms(net) == 1

    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    _randomise_norms(plain)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        assert_close(co.fuse_batch_norm(plain)(x), plain(x), atol=1e-5, rtol=1e-5)

    with pytest.raises(RuntimeError, match="training mode"):
        co.fuse_batch_norm(_net().train())

    hooked = _net()
    hooked.norm1.register_forward_hook(lambda *args: None)  # a hook would lose its module
    assert _norms(co.fuse_batch_norm(hooked)) == 2


def test_fused_video_model_steps_like_the_original():
    from cozoo.models import create_model

    model = create_model("cox3d_s", pool_size=2).eval()
    _randomise_norms(model)
    fused = co.fuse_batch_norm(model)
    assert _norms(fused) == 0
    x = torch.randn(1, 3, model.delay + 3, 32, 32)
    with torch.no_grad():
        assert_close(fused.forward_steps(x), model.forward_steps(x), atol=1e-4, rtol=1e-4)
        outs = [(model.forward_step(f), fused.forward_step(f)) for f in x.unbind(2)]
    assert outs[-1][0] is not None
    for a, b in outs[model.delay :]:
        assert_close(b, a, atol=1e-4, rtol=1e-4)
