"""``ContinualVideoNet``: the base class of the continual video classifiers.

A ``co.Sequential`` of named stages (``stem``, ``res2`` ... ``head``) that steps frames in
channels-last memory and maps checkpoints of other code bases onto itself
(:mod:`.checkpoints`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from cozoo import co
from cozoo.co.state_dicts import flatten_key

from .._keys import unwrap
from .checkpoints import CAFFE2_RULES, CAFFE2_SKIPPED, detect_source_format, reshape_blob

__all__ = ["ContinualVideoNet"]


class ContinualVideoNet(co.Sequential):
    """Base class of the continual video classifiers: a ``co.Sequential`` of named stages
    (``stem``, ``res2`` ... ``head``) that can map checkpoints of other code bases onto itself.

    ``forward(clip (B, 3, T, H, W))`` -> logits ``(B, num_classes, 1)``;
    ``forward_step(frame (B, 3, H, W))`` -> logits ``(B, num_classes)`` or None (warm-up);
    ``forward_steps(clip)`` -> ``(B, num_classes, T_out)``. No softmax is applied.

    Subclasses list their ``source_formats`` and implement ``_rename`` (source key -> logical
    key, see :mod:`.blocks`) and optionally ``_added_keys``.
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
    @staticmethod
    def detect_source_format(state: Mapping[str, Any]) -> str:
        """The layout of a state dict (``checkpoints.detect_source_format``)."""
        return detect_source_format(state)

    def convert_state_dict(self, state: Mapping[str, Any], source_format: str) -> Dict[str, Any]:
        """Map a checkpoint's weights onto this model's ``state_dict`` keys.

        Args:
            state: a state dict, or a checkpoint dict holding it (``cozoo.models.unwrap``:
                ``"state_dict"``, ``"model_state"``, Caffe2's ``"blobs"`` of numpy arrays).
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
        state = unwrap(state)
        own = self.state_dict(keep_vars=True)
        by_logical = {flatten_key(key): key for key in own}
        out: Dict[str, Any] = OrderedDict()
        for key, tensor in state.items():
            if fmt == "caffe2" and CAFFE2_SKIPPED.fullmatch(key):
                continue
            logical = self._logical_key(key, fmt)
            target = by_logical.get(logical, logical) if logical is not None else key
            if target in out:
                raise ValueError(
                    f"{type(self).__name__}.convert_state_dict: two {fmt} keys map to {target!r}"
                )
            if fmt == "caffe2" and target in own:
                tensor = reshape_blob(tensor, own[target].shape)
            out[target] = tensor
        for logical, tensor in self._added_keys(fmt, out, by_logical).items():
            out[by_logical[logical]] = tensor
        if fmt == "caffe2":  # Caffe2 has no BN counters; the strict loaders want every key
            for key in own:
                if key.endswith(".num_batches_tracked") and key not in out:
                    if key[: -len("num_batches_tracked")] + "weight" in out:
                        out[key] = torch.tensor(0, dtype=torch.long)
        return out

    def _logical_key(self, key: str, fmt: str) -> Optional[str]:
        if fmt == "cozoo":
            return key
        if fmt == "caffe2":
            slowfast = CAFFE2_RULES(key)
            return None if slowfast is None else self._rename(slowfast, "pyslowfast")
        return self._rename(key, fmt)

    def _rename(self, key: str, source_format: str) -> Optional[str]:
        """The logical key of a source key (None: unknown)."""
        return None

    def _added_keys(
        self, source_format: str, converted: Mapping[str, Any], by_logical: Mapping[str, str]
    ) -> Dict[str, Tensor]:
        """Entries a source format lacks by design (logical key -> tensor)."""
        return {}
