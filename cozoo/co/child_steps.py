"""How a step reaches a child module: between its forward hooks, and on stored states.

Containers step their children directly (not through ``nn.Module.__call__``), so the children's
forward (pre-)hooks are fired here (``_hooked``) when there are any. ``forward_step`` with
``update_state=True`` steps the whole network on the modules' stored states in place
(``StoredStates``) instead of on a snapshot; ``routes_child_states`` says which containers hand
that on to their children.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from torch import nn
from torch.nn.modules import module as _torch_module

__all__ = ["StoredStates", "has_forward_hooks", "routes_child_states"]


def has_forward_hooks(module: nn.Module) -> bool:
    """Whether forward (pre-)hooks would fire for ``module`` (its own or global ones)."""
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or _torch_module._global_forward_hooks
        or _torch_module._global_forward_pre_hooks
    )


_has_hooks = has_forward_hooks


def _has_any_hooks(module: nn.Module) -> bool:
    return bool(
        _has_hooks(module)
        or module._backward_hooks
        or module._backward_pre_hooks
        or _torch_module._global_backward_hooks
        or _torch_module._global_backward_pre_hooks
    )


def _hooked(module: nn.Module, compute: Callable, x: Any, state: Any, extra: Any):
    """``compute(x, state, extra)`` of a child inside a container, between the child's forward
    pre-hooks and forward hooks, which see the step input ``(x,)`` and the output tensor."""
    for hook in (
        *_torch_module._global_forward_pre_hooks.values(),
        *module._forward_pre_hooks.values(),
    ):
        result = hook(module, (x,))
        if result is not None:
            x = result[0] if isinstance(result, tuple) else result
    out = compute(x, state, extra)
    y = out[0]  # None on steps without output, as in a top-level call through torch's machinery
    for hook in (*_torch_module._global_forward_hooks.values(), *module._forward_hooks.values()):
        result = hook(module, (x,), y)
        if result is not None:
            y = result
    return (y,) + tuple(out[1:])


class StoredStates:
    """The state argument of a step that works on the modules' stored states in place.

    ``forward_step`` (with ``update_state=True``) passes it instead of a snapshot of the whole
    network's state: containers hand it on to their children, and every other module reads
    its own stored state, steps, and stores the next one, noting the state it replaced. A step
    that raises puts every replaced state back, so the network's state is as it was. This
    spares a top-level step two walks over every module (a snapshot and a store).
    """

    __slots__ = ("replaced",)

    def __init__(self) -> None:
        self.replaced: list = []

    def restore(self) -> None:
        for module, state in reversed(self.replaced):
            module.set_state(state)
        self.replaced.clear()


_ROUTING_METHODS = ("_step", "get_state", "set_state", "_child_states")


def _owner(cls: type, name: str) -> Optional[type]:
    return next((k for k in cls.__mro__ if name in k.__dict__), None)


def routes_child_states(cls: type) -> bool:
    """Whether modules of ``cls`` hand a ``StoredStates`` on to their children.

    True when each of ``_step``, ``get_state``, ``set_state`` and ``_child_states`` comes
    from a class that declares ``_co_routes_child_states = True`` itself: a subclass that
    overrides one of them without declaring it is stepped like any other module (through its
    own ``get_state``/``set_state``), which is always correct.
    """
    owners = [_owner(cls, name) for name in _ROUTING_METHODS]
    return all(
        owner is not None and owner.__dict__.get("_co_routes_child_states", False)
        for owner in owners
    )
