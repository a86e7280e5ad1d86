"""Building blocks shared by the continual video models (CoX3D, CoSlow, CoI3D).

Everything here is assembled from ``cozoo.co`` layers, so every block has the three call modes
(``forward`` on a clip ``(B, C, T, H, W)``, ``forward_step`` on a frame ``(B, C, H, W)``,
``forward_steps`` on a chunk) and computes its ``receptive_field`` and ``delay`` itself. Residual
shortcuts are aligned in time by ``co.BroadcastReduce`` (a shorter branch gets a ``co.Delay``
appended automatically); no delay is counted by hand here.

Naming: every module has a non-numeric name (``stem``, ``res2``, ``block0``, ``conv_a``...), so
a parameter's key with the numeric components that ``co`` containers insert removed
(``co.state_dicts.flatten_key``) is unique. That short, *logical* key is what the checkpoint
converters target (``ContinualVideoNet.convert_state_dict``); it maps to the model's own key::

    res4.block0.residual.shortcut.0.conv.weight   (own key; "0": the auto-inserted delay wrapper)
    res4.block0.residual.shortcut.conv.weight     (logical key)

One residual block (X3D and ResNet bottlenecks alike)::

    x -+- shortcut: identity | conv 1x1x1 (stride 1,s,s) + BN -[co.Delay(branch delay)]-+
       |                                                                               sum -> ReLU
       +- branch: conv_a -> norm_a -> ... -> conv_c -> norm_c --------------------------+
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from cozoo import co
from cozoo.co.state_dicts import flatten_key

__all__ = [
    "TEMPORAL_FILLS",
    "CoResNet",
    "ContinualVideoNet",
    "KeyRules",
    "RESNET50_STAGES",
    "conv3d",
    "identity_batch_norm",
    "norm3d",
    "prefixed_rename",
    "residual_block",
    "resnet_bottleneck",
    "resnet_head",
    "resnet_stem",
    "shortcut",
    "squeeze_excitation",
    "stage",
    "x3d_bottleneck",
    "x3d_head",
    "x3d_stem",
]

#: Values of ``temporal_fill``: what pre-fills the state of the temporal convolutions and pools
#: after a reset. ``"zeros"`` emulates the zero padding of the regular network, ``"replicate"``
#: repeats the first frame ("boring video").
TEMPORAL_FILLS = ("zeros", "replicate")

Triple = Tuple[int, int, int]


def _triple(value: Union[int, Sequence[int]]) -> Triple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * 3  # type: ignore[return-value]


def _check_fill(temporal_fill: str) -> str:
    if temporal_fill not in TEMPORAL_FILLS:
        raise ValueError(f"temporal_fill must be one of {TEMPORAL_FILLS}, got {temporal_fill!r}")
    return temporal_fill


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------
def conv3d(
    in_channels: int,
    out_channels: int,
    kernel_size: Union[int, Triple],
    stride: Union[int, Triple] = 1,
    groups: int = 1,
    bias: bool = False,
    temporal_fill: str = "zeros",
) -> co.Conv3d:
    """A continual 3-D convolution with "same" padding ``k // 2`` in every dim.

    Clip ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H / s, W / s)`` (time is never strided here);
    a temporal kernel ``k_t`` adds ``k_t // 2`` steps of delay.
    """
    kernel = _triple(kernel_size)
    return co.Conv3d(
        in_channels,
        out_channels,
        kernel,
        stride=_triple(stride),
        padding=tuple(k // 2 for k in kernel),
        groups=groups,
        bias=bias,
        temporal_fill=_check_fill(temporal_fill),
    )


def norm3d(channels: int) -> nn.BatchNorm3d:
    """BatchNorm over ``(B, C, T, H, W)`` (eps 1e-5, momentum 0.1, as pytorchvideo and
    PySlowFast); containers make it continual. Steps equal clips only in eval mode."""
    return nn.BatchNorm3d(channels, eps=1e-5, momentum=0.1)


def _drop_space(x: Tensor) -> Tensor:
    """``(B, C, T, h, w)`` -> ``(B, C, T)``: spatial mean (``h = w = 1`` after the head pool)."""
    return x.mean((3, 4))


def squeeze_excitation(channels: int, reduced: int) -> co.BroadcastReduce:
    """Frame-wise squeeze-excitation: ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``.

    ``(B, C, T, H, W)`` -> same shape. The squeeze is the spatial mean of *each frame*, in every
    call mode: the regular X3D averages over the whole clip (T, H, W), which a stream cannot do
    causally (spec pitfall 2), so ``forward`` here differs from pytorchvideo's X3D on real video.
    No delay. Keys: ``gate.fc1.{weight,bias}``, ``gate.fc2.{weight,bias}``.
    """
    gate = co.Sequential(
        OrderedDict(
            pool=co.SpatialMean(),
            fc1=co.Conv3d(channels, reduced, 1, bias=True),
            relu=nn.ReLU(),
            fc2=co.Conv3d(reduced, channels, 1, bias=True),
            sigmoid=nn.Sigmoid(),
        )
    )
    return co.BroadcastReduce(OrderedDict(identity=co.Identity(), gate=gate), reduce="mul")


def shortcut(in_channels: int, out_channels: int, spatial_stride: int) -> co.Sequential:
    """Projection shortcut of a stage's first block: 1x1x1 conv (stride ``(1, s, s)``) + BN.

    ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H / s, W / s)``; keys ``conv.weight``, ``norm.*``.
    """
    return co.Sequential(
        OrderedDict(
            conv=conv3d(in_channels, out_channels, 1, stride=(1, spatial_stride, spatial_stride)),
            norm=norm3d(out_channels),
        )
    )


def residual_block(branch: nn.Module, projection: Optional[nn.Module] = None) -> co.Sequential:
    """``relu(shortcut(x) + branch(x))``; the shortcut is ``projection`` or the identity.

    ``co.BroadcastReduce`` delays the shortcut by the branch's delay (a ``co.Delay`` appended to
    it), so the two sums meet at the same input frame in every call mode. Keys:
    ``residual.shortcut.*``, ``residual.branch.*``.
    """
    projection = co.Identity() if projection is None else projection
    residual = co.BroadcastReduce(OrderedDict(shortcut=projection, branch=branch), reduce="sum")
    return co.Sequential(OrderedDict(residual=residual, relu=nn.ReLU()))


def stage(blocks: Iterable[nn.Module]) -> co.Sequential:
    """A stage: blocks named ``block0``, ``block1``, ... run in turn."""
    return co.Sequential(OrderedDict((f"block{j}", block) for j, block in enumerate(blocks)))


# --------------------------------------------------------------------------------------------
# X3D
# --------------------------------------------------------------------------------------------
def x3d_stem(out_channels: int = 24, temporal_fill: str = "zeros") -> co.Sequential:
    """X3D stem: 1x3x3 conv (stride 1,2,2) -> 5x1x1 depthwise temporal conv -> BN -> ReLU.

    ``(B, 3, T, H, W)`` -> ``(B, 24, T, H/2, W/2)``; receptive field 5, delay 2.
    Keys ``conv_s`` (spatial), ``conv_t`` (temporal), ``norm``.
    """
    return co.Sequential(
        OrderedDict(
            conv_s=conv3d(3, out_channels, (1, 3, 3), stride=(1, 2, 2)),
            conv_t=conv3d(
                out_channels,
                out_channels,
                (5, 1, 1),
                groups=out_channels,
                temporal_fill=temporal_fill,
            ),
            norm=norm3d(out_channels),
            relu=nn.ReLU(),
        )
    )


def x3d_bottleneck(
    in_channels: int,
    inner_channels: int,
    out_channels: int,
    spatial_stride: int = 1,
    se_channels: Optional[int] = None,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """X3D residual branch: 1x1x1 -> BN -> ReLU -> 3x3x3 depthwise (stride 1,s,s; temporal
    padding 1) -> BN -> [frame-wise SE] -> Swish (SiLU) -> 1x1x1 -> BN.

    ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H/s, W/s)``; receptive field 3, delay 1.
    """
    layers: Dict[str, nn.Module] = OrderedDict(
        conv_a=conv3d(in_channels, inner_channels, 1),
        norm_a=norm3d(inner_channels),
        relu_a=nn.ReLU(),
        conv_b=conv3d(
            inner_channels,
            inner_channels,
            3,
            stride=(1, spatial_stride, spatial_stride),
            groups=inner_channels,
            temporal_fill=temporal_fill,
        ),
        norm_b=norm3d(inner_channels),
    )
    if se_channels:
        layers["se"] = squeeze_excitation(inner_channels, se_channels)
    layers.update(
        act_b=nn.SiLU(),
        conv_c=conv3d(inner_channels, out_channels, 1),
        norm_c=norm3d(out_channels),
    )
    return co.Sequential(layers)


def x3d_head(
    in_channels: int,
    inner_channels: int,
    hidden_channels: int,
    num_classes: int,
    pool_size: int,
    dropout: float = 0.5,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """X3D head, in pytorchvideo's order: conv_5 (1x1x1) -> BN -> ReLU -> average pool ->
    lin_5 (1x1x1, no bias) -> ReLU -> dropout -> projection. Outputs logits (no softmax).

    Clip ``(B, C, T, h, w)`` -> ``(B, num_classes, 1)`` (mean over the whole clip); step
    ``(B, C, h, w)`` -> ``(B, num_classes)`` (mean over the last ``pool_size`` frames).
    """
    return co.Sequential(
        OrderedDict(
            conv_5=conv3d(in_channels, inner_channels, 1),
            norm_5=norm3d(inner_channels),
            relu_5=nn.ReLU(),
            pool=_pool(pool_size, temporal_fill),
            lin_5=conv3d(inner_channels, hidden_channels, 1),
            relu=nn.ReLU(),
            dropout=nn.Dropout(dropout),
            flatten=co.Lambda(_drop_space, takes_time=True),
            projection=co.Linear(hidden_channels, num_classes, channel_dim=1),
        )
    )


# --------------------------------------------------------------------------------------------
# ResNet-3D
# --------------------------------------------------------------------------------------------
def resnet_stem(
    out_channels: int = 64, temporal_kernel: int = 1, temporal_fill: str = "zeros"
) -> co.Sequential:
    """ResNet stem: conv ``k_t``x7x7 (stride 1,2,2) -> BN -> ReLU -> max pool 1x3x3 (stride 1,2,2).

    ``(B, 3, T, H, W)`` -> ``(B, 64, T, H/4, W/4)``; delay ``k_t // 2``. Keys ``conv``, ``norm``.
    """
    return co.Sequential(
        OrderedDict(
            conv=conv3d(
                3,
                out_channels,
                (temporal_kernel, 7, 7),
                stride=(1, 2, 2),
                temporal_fill=temporal_fill,
            ),
            norm=norm3d(out_channels),
            relu=nn.ReLU(),
            pool=co.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
    )


def resnet_bottleneck(
    in_channels: int,
    inner_channels: int,
    out_channels: int,
    spatial_stride: int = 1,
    temporal_kernel: int = 1,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """ResNet-3D bottleneck branch: conv_a ``k_t``x1x1 (``k_t`` in {1, 3}, temporal padding
    ``k_t // 2``) -> BN -> ReLU -> conv_b 1x3x3 (stride 1,s,s) -> BN -> ReLU -> conv_c 1x1x1 -> BN.

    ``(B, C_in, T, H, W)`` -> ``(B, C_out, T, H/s, W/s)``; delay ``k_t // 2``.
    """
    return co.Sequential(
        OrderedDict(
            conv_a=conv3d(
                in_channels, inner_channels, (temporal_kernel, 1, 1), temporal_fill=temporal_fill
            ),
            norm_a=norm3d(inner_channels),
            relu_a=nn.ReLU(),
            conv_b=conv3d(
                inner_channels,
                inner_channels,
                (1, 3, 3),
                stride=(1, spatial_stride, spatial_stride),
            ),
            norm_b=norm3d(inner_channels),
            relu_b=nn.ReLU(),
            conv_c=conv3d(inner_channels, out_channels, 1),
            norm_c=norm3d(out_channels),
        )
    )


def resnet_head(
    in_channels: int,
    num_classes: int,
    pool_size: int,
    dropout: float = 0.5,
    temporal_fill: str = "zeros",
) -> co.Sequential:
    """ResNet head: average pool -> dropout -> projection (logits, no softmax).

    Clip ``(B, C, T, h, w)`` -> ``(B, num_classes, 1)``; step ``(B, C, h, w)`` ->
    ``(B, num_classes)`` (mean over the last ``pool_size`` positions of its input stream).
    """
    return co.Sequential(
        OrderedDict(
            pool=_pool(pool_size, temporal_fill),
            dropout=nn.Dropout(dropout),
            flatten=co.Lambda(_drop_space, takes_time=True),
            projection=co.Linear(in_channels, num_classes, channel_dim=1),
        )
    )


def _pool(pool_size: int, temporal_fill: str) -> co.AdaptiveAvgPool3d:
    """The continual head pool: ``forward`` = global average over the clip (the regular
    network, whatever ``T``); steps = average of the last ``pool_size`` frames (delay P - 1)."""
    if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
        raise ValueError(f"pool_size must be a positive int, got {pool_size!r}")
    return co.AdaptiveAvgPool3d(
        (1, 1, 1), kernel_size=pool_size, temporal_fill=_check_fill(temporal_fill)
    )


# --------------------------------------------------------------------------------------------
# Checkpoint conversion
# --------------------------------------------------------------------------------------------
Replacement = Union[str, Callable[["re.Match[str]"], Optional[str]]]


class KeyRules:
    """Ordered renaming rules: ``(regex, replacement)``; a key is renamed by the first regex
    that matches it *entirely* (``re.fullmatch``). ``replacement`` is a ``re`` template
    (``r"res\\1.block\\2."``) or a function of the match; it may return None (no rename).

    >>> KeyRules([(r"blocks\\.0\\.norm\\.(.+)", r"stem.norm.\\1")])("blocks.0.norm.weight")
    'stem.norm.weight'
    """

    def __init__(self, rules: Sequence[Tuple[str, Replacement]]):
        self._rules = [(re.compile(pattern), replacement) for pattern, replacement in rules]

    def __call__(self, key: str) -> Optional[str]:
        for pattern, replacement in self._rules:
            match = pattern.fullmatch(key)
            if match is not None:
                return replacement(match) if callable(replacement) else match.expand(replacement)
        return None


def prefixed_rename(prefix: str, rules: KeyRules, rest: str) -> Optional[str]:
    """``prefix + rules(rest)``, or None when ``rules`` do not know ``rest``."""
    renamed = rules(rest)
    return None if renamed is None else prefix + renamed


#: Inside a residual block: pytorchvideo (``ResBlock``) names -> logical names.
PYTORCHVIDEO_BLOCK_RULES = KeyRules(
    [
        (r"branch1_conv\.(.+)", r"shortcut.conv.\1"),
        (r"branch1_norm\.(.+)", r"shortcut.norm.\1"),
        (r"branch2\.conv_([abc])\.(.+)", r"branch.conv_\1.\2"),
        (r"branch2\.norm_b\.0\.(.+)", r"branch.norm_b.\1"),  # X3D: norm_b = (BN, SE)
        (r"branch2\.norm_b\.1\.block\.0\.(.+)", r"branch.se.gate.fc1.\1"),
        (r"branch2\.norm_b\.1\.block\.2\.(.+)", r"branch.se.gate.fc2.\1"),
        (r"branch2\.norm_([abc])\.(.+)", r"branch.norm_\1.\2"),
    ]
)

#: Inside a residual block: PySlowFast (``ResBlock`` / ``X3DTransform``) names -> logical names.
PYSLOWFAST_BLOCK_RULES = KeyRules(
    [
        (r"branch1\.(.+)", r"shortcut.conv.\1"),
        (r"branch1_bn\.(.+)", r"shortcut.norm.\1"),
        (r"branch2\.([abc])\.(.+)", r"branch.conv_\1.\2"),
        (r"branch2\.([abc])_bn\.(.+)", r"branch.norm_\1.\2"),
        (r"branch2\.se\.(fc[12])\.(.+)", r"branch.se.gate.\1.\2"),
    ]
)

#: PySlowFast stage blocks ``s{n}.pathway0_res{j}.`` (n = 2..5) -> ``res{n}.block{j}.residual.``
PYSLOWFAST_STAGE_RULE: Tuple[str, Replacement] = (
    r"s([2-5])\.pathway0_res(\d+)\.(.+)",
    lambda m: prefixed_rename(f"res{m[1]}.block{m[2]}.residual.", PYSLOWFAST_BLOCK_RULES, m[3]),
)

_CAFFE2_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}

#: Caffe2 blob names (PySlowFast ResNet ``.pkl``) -> PySlowFast names. ``riv`` is read as the
#: running variance, as PySlowFast's own converter does.
CAFFE2_RULES = KeyRules(
    [
        (r"conv1_w", "s1.pathway0_stem.conv.weight"),
        (r"res_conv1_bn_(s|b|rm|riv)", lambda m: f"s1.pathway0_stem.bn.{_CAFFE2_BN[m[1]]}"),
        (r"res([2-5])_(\d+)_branch1_w", r"s\1.pathway0_res\2.branch1.weight"),
        (
            r"res([2-5])_(\d+)_branch1_bn_(s|b|rm|riv)",
            lambda m: f"s{m[1]}.pathway0_res{m[2]}.branch1_bn.{_CAFFE2_BN[m[3]]}",
        ),
        (r"res([2-5])_(\d+)_branch2([abc])_w", r"s\1.pathway0_res\2.branch2.\3.weight"),
        (
            r"res([2-5])_(\d+)_branch2([abc])_bn_(s|b|rm|riv)",
            lambda m: f"s{m[1]}.pathway0_res{m[2]}.branch2.{m[3]}_bn.{_CAFFE2_BN[m[4]]}",
        ),
        (r"pred_w", "head.projection.weight"),
        (r"pred_b", "head.projection.bias"),
    ]
)

#: Caffe2 blobs that are optimiser / schedule bookkeeping, not weights (skipped, documented).
CAFFE2_SKIPPED = re.compile(r".*_momentum|lr|iter|model_iter")

_WRAPPERS = ("model_state", "state_dict")


def _unwrap(state: Mapping[str, Any], source_format: str) -> Mapping[str, Any]:
    """The weights inside a checkpoint dict: ``state["blobs"]`` (Caffe2 pickles),
    ``state["model_state"]`` / ``state["state_dict"]``, or ``state`` itself (a bare state dict)."""
    names = ("blobs",) if source_format == "caffe2" else _WRAPPERS
    for name in names:
        inner = state.get(name) if isinstance(state, Mapping) else None
        if isinstance(inner, Mapping):
            return inner
    return state


def _as_tensor(value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value
    return torch.as_tensor(value).clone()  # numpy blobs (Caffe2): own the memory


class ContinualVideoNet(co.Sequential):
    """Base class of the continual video classifiers: a ``co.Sequential`` of named stages
    (``stem``, ``res2`` ... ``head``) that can map checkpoints of other code bases onto itself.

    ``forward(clip (B, 3, T, H, W))`` -> logits ``(B, num_classes, 1)``;
    ``forward_step(frame (B, 3, H, W))`` -> logits ``(B, num_classes)`` or None (warm-up);
    ``forward_steps(clip)`` -> ``(B, num_classes, T_out)``. No softmax is applied.

    Subclasses list their ``source_formats`` and implement ``_rename`` (source key -> logical
    key, see the module docstring) and optionally ``_added_keys``.
    """

    source_formats: Tuple[str, ...] = ("cozoo",)

    #: Memory layout of the frames inside a step. Channels-last ``(B, H, W, C)`` memory runs
    #: oneDNN's depthwise convolutions about twice as fast and keeps the 1x1 convolutions
    #: plain matmuls (``cozoo.co.conv``); ``torch.contiguous_format`` turns it off. Clips keep
    #: the default layout (channels-last 3-D clips measured slower).
    step_memory_format: torch.memory_format = torch.channels_last

    def __init__(self, layers: OrderedDict[str, nn.Module], pool_size: int, num_classes: int):
        super().__init__(layers)
        self.pool_size = pool_size
        self.num_classes = num_classes

    def _own_input(self, input: Any) -> Any:
        # The caller's frame is copied once anyway: copy it straight into the step layout.
        if isinstance(input, Tensor) and input.dim() == 4:
            return input.clone(memory_format=self.step_memory_format)
        return super()._own_input(input)

    _co_routes_child_states = True  # _step only changes the frame's layout

    def _step(self, x: Tensor, state: Any, valid: Any = True):
        if x.dim() == 4:
            x = x.contiguous(memory_format=self.step_memory_format)
        return super()._step(x, state, valid)

    # ---- checkpoint conversion ----------------------------------------------------------------
    def convert_state_dict(self, state: Mapping[str, Any], source_format: str) -> Dict[str, Any]:
        """Map a checkpoint's weights onto this model's ``state_dict`` keys.

        Args:
            state: a state dict, or a checkpoint dict holding it under ``"model_state"`` /
                ``"state_dict"`` (Caffe2: ``"blobs"``, a dict of numpy arrays).
            source_format: ``"pytorchvideo"``, ``"pyslowfast"``, ``"caffe2"`` (ResNets only) or
                ``"cozoo"`` (this model's own keys; flattened keys, as saved under
                ``co.flat_state_dict``, are mapped back to the long ones).

        Returns exactly the mapped entries: every source key is renamed or, when no rule knows
        it, passed through under its own name (so that a strict ``load_state_dict`` reports it
        as unexpected); keys the source lacks are not invented, except the documented
        ``_added_keys`` of a family (the pytorchvideo X3D res2 shortcut BN). Caffe2 momentum,
        ``lr`` and ``iter`` blobs are skipped and 1-D/2-D blobs are reshaped to the target's
        shape when the element counts agree. Caffe2 has no BN ``num_batches_tracked``: it is set
        to 0 for every BN whose weight was mapped.
        """
        fmt = source_format.lower() if isinstance(source_format, str) else source_format
        if fmt not in self.source_formats:
            raise ValueError(
                f"{type(self).__name__}.convert_state_dict: unknown source_format "
                f"{source_format!r}; expected one of {self.source_formats}"
            )
        state = _unwrap(state, fmt)
        own = self.state_dict(keep_vars=True)
        by_logical = {flatten_key(key): key for key in own}
        out: Dict[str, Any] = OrderedDict()
        for key, value in state.items():
            if fmt == "caffe2" and CAFFE2_SKIPPED.fullmatch(key):
                continue
            if fmt == "cozoo":
                logical: Optional[str] = key
            elif fmt == "caffe2":
                slowfast = CAFFE2_RULES(key)
                logical = None if slowfast is None else self._rename(slowfast, "pyslowfast")
            else:
                logical = self._rename(key, fmt)
            target = by_logical.get(logical, logical) if logical is not None else key
            if target in out:
                raise ValueError(
                    f"{type(self).__name__}.convert_state_dict: two {fmt} keys map to {target!r}"
                )
            tensor = _as_tensor(value)
            if fmt == "caffe2" and target in own:
                tensor = _reshape_blob(tensor, own[target].shape)
            out[target] = tensor
        for logical, tensor in self._added_keys(fmt, out, by_logical).items():
            out[by_logical[logical]] = tensor
        if fmt == "caffe2":  # Caffe2 has no BN counters; the strict loaders want every key
            for key in own:
                if key.endswith(".num_batches_tracked") and key not in out:
                    if key[: -len("num_batches_tracked")] + "weight" in out:
                        out[key] = torch.tensor(0, dtype=torch.long)
        return out

    def _rename(self, key: str, source_format: str) -> Optional[str]:
        """The logical key of a source key (None: unknown)."""
        return None

    def _added_keys(
        self, source_format: str, converted: Mapping[str, Any], by_logical: Mapping[str, str]
    ) -> Dict[str, Tensor]:
        """Entries a source format lacks by design (logical key -> tensor)."""
        return {}


def _reshape_blob(tensor: Tensor, shape: torch.Size) -> Tensor:
    """A 1-D/2-D Caffe2 blob reshaped to the target's higher-rank shape (same element count)."""
    if tensor.dim() <= 2 < len(shape) and tensor.numel() == shape.numel():
        return tensor.reshape(shape)
    return tensor


def identity_batch_norm(channels: int, eps: float = 1e-5) -> Dict[str, Tensor]:
    """BatchNorm entries that make it the identity in eval mode: weight 1, bias 0, mean 0,
    variance ``1 - eps`` (so ``sqrt(var + eps) = 1``), ``num_batches_tracked`` 0."""
    return OrderedDict(
        weight=torch.ones(channels),
        bias=torch.zeros(channels),
        running_mean=torch.zeros(channels),
        running_var=torch.full((channels,), 1.0 - eps),
        num_batches_tracked=torch.tensor(0, dtype=torch.long),
    )


# --------------------------------------------------------------------------------------------
# The ResNet-3D family (CoSlow, CoI3D)
# --------------------------------------------------------------------------------------------
#: ResNet-50 stages res2..res5: (output channels, inner channels, blocks, spatial stride).
RESNET50_STAGES = ((256, 64, 3, 1), (512, 128, 4, 2), (1024, 256, 6, 2), (2048, 512, 3, 2))


class CoResNet(ContinualVideoNet):
    """Continual ResNet-50-3D: stem -> res2 -> [pool1] -> res3 -> res4 -> res5 -> head.

    Args:
        stem_temporal_kernel: temporal kernel of the stem conv (Slow 1, I3D 5).
        conv_a_kernels: temporal kernel of conv_a of every block, per stage (res2..res5).
        pool1: I3D's temporal max pool (2x1x1, stride 2) after res2: everything after it runs
            on every 2nd step, and the head pool holds ``pool_size // 2`` positions.
        pool_size: P, the head's average pool in input frames.
        temporal_fill: ``"zeros"`` or ``"replicate"`` (state fill after a reset).
        num_classes, dropout: head.

    Clip ``(B, 3, T, H, W)`` -> logits ``(B, num_classes, 1)``; frame ``(B, 3, H, W)`` -> logits
    ``(B, num_classes)`` or None. Checkpoint formats: ``pytorchvideo`` (hub ``slow_r50`` /
    ``i3d_r50``), ``pyslowfast``, ``caffe2`` (PySlowFast ``.pkl`` blobs), ``cozoo``.
    """

    source_formats = ("cozoo", "pytorchvideo", "pyslowfast", "caffe2")
    #: pytorchvideo ``blocks.{i}`` indices of res2..res5 (I3D: ``blocks.2`` is pool1).
    pytorchvideo_stage_blocks: Tuple[int, ...] = (1, 2, 3, 4)
    #: pytorchvideo ``blocks.{i}`` index of the head.
    pytorchvideo_head_block: int = 5

    def __init__(
        self,
        *,
        stem_temporal_kernel: int,
        conv_a_kernels: Sequence[Sequence[int]],
        pool1: bool,
        pool_size: int = 64,
        temporal_fill: str = "zeros",
        num_classes: int = 400,
        dropout: float = 0.5,
    ):
        if pool1 and (pool_size < 2 or pool_size % 2):
            raise ValueError(
                f"{type(self).__name__}: pool_size counts input frames and the head runs at "
                f"half rate, so it must be even and >= 2, got {pool_size}"
            )
        layers: Dict[str, nn.Module] = OrderedDict(
            stem=resnet_stem(64, stem_temporal_kernel, temporal_fill)
        )
        in_channels = 64
        for index, ((out_channels, inner, depth, stride), kernels) in enumerate(
            zip(RESNET50_STAGES, conv_a_kernels)
        ):
            if len(kernels) != depth:
                raise ValueError(f"res{index + 2}: {depth} conv_a kernels needed, got {kernels}")
            blocks = []
            for j, kernel in enumerate(kernels):
                cin, s = (in_channels, stride) if j == 0 else (out_channels, 1)
                branch = resnet_bottleneck(cin, inner, out_channels, s, kernel, temporal_fill)
                projection = shortcut(cin, out_channels, s) if j == 0 else None
                blocks.append(residual_block(branch, projection))
            layers[f"res{index + 2}"] = stage(blocks)
            if pool1 and index == 0:
                layers["pool1"] = co.MaxPool3d((2, 1, 1), stride=(2, 1, 1))
            in_channels = out_channels
        positions = pool_size // 2 if pool1 else pool_size
        layers["head"] = resnet_head(in_channels, num_classes, positions, dropout, temporal_fill)
        super().__init__(layers, pool_size, num_classes)

    def _rename(self, key: str, source_format: str) -> Optional[str]:
        if source_format == "pyslowfast":
            return _RESNET_PYSLOWFAST(key)
        return self._pytorchvideo_rules()(key)

    def _pytorchvideo_rules(self) -> KeyRules:
        stages = {str(b): n for n, b in enumerate(self.pytorchvideo_stage_blocks, start=2)}
        return KeyRules(
            [
                (r"blocks\.0\.conv\.(.+)", r"stem.conv.\1"),
                (r"blocks\.0\.norm\.(.+)", r"stem.norm.\1"),
                (
                    r"blocks\.(\d+)\.res_blocks\.(\d+)\.(.+)",
                    lambda m: (
                        None
                        if m[1] not in stages
                        else prefixed_rename(
                            f"res{stages[m[1]]}.block{m[2]}.residual.",
                            PYTORCHVIDEO_BLOCK_RULES,
                            m[3],
                        )
                    ),
                ),
                (rf"blocks\.{self.pytorchvideo_head_block}\.proj\.(.+)", r"head.projection.\1"),
            ]
        )


_RESNET_PYSLOWFAST = KeyRules(
    [
        (r"s1\.pathway0_stem\.conv\.(.+)", r"stem.conv.\1"),
        (r"s1\.pathway0_stem\.bn\.(.+)", r"stem.norm.\1"),
        PYSLOWFAST_STAGE_RULE,
        (r"head\.projection\.(.+)", r"head.projection.\1"),
    ]
)
