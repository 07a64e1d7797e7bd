"""Seeds stacked into one network: N models of one architecture, differing only in their weights,
run as one batched model (`torch.func.vmap` over their stacked parameters: convolutions become
grouped ones, BatchNorm stays per model because its channels are), so that small networks fill
a large GPU. Each member's weights and optimiser state can be taken out again, exactly, to be
saved as its own run's; `train/stacked.py` trains with it.

Inputs and outputs carry the members in front: images (N, B, C, H, W) give logits (N, B, K).
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

# vmap loops over the members for the ops it has no batched kernel for; with channels_last maps one
# is the head's global pooling (adaptive_avg_pool2d), a small op: its warning would print every epoch
warnings.filterwarnings(
    "ignore", message="There is a performance drop because we have not yet implemented the batching rule"
)


def _key(name: str) -> str:
    """A parameter's name as an attribute of the stack (a module's names cannot hold dots)."""
    return name.replace(".", "/")


class StackedModel(nn.Module):
    """`members` (same architecture, same parameter and buffer names and shapes) as one model whose
    parameters are theirs stacked along a new first dimension. The members keep their own tensors
    (`write_members` copies the stack's back into them); the first serves as the stack's template."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("a stack needs at least one member")
        shapes = {tuple((n, t.shape) for n, t in m.state_dict().items()) for m in members}
        if len(shapes) > 1:
            raise ValueError("stacked models must have the same parameters and buffers (one architecture)")
        params, buffers = stack_module_state(list(members))
        self.size = len(members)
        self.param_names, self.buffer_names = list(params), list(buffers)
        for name, value in params.items():
            self.register_parameter(_key(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_key(name), value.clone())
        object.__setattr__(self, "template", members[0])  # not a submodule: its tensors are not ours
        self.train(members[0].training)

    def train(self, mode: bool = True) -> StackedModel:
        super().train(mode)
        self.template.train(mode)
        return self

    def stacked(self, name: str) -> torch.Tensor:
        """The stacked tensor (N x the member's shape) of a member's parameter or buffer `name`."""
        return getattr(self, _key(name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {n: self.stacked(n) for n in self.param_names}
        buffers = {n: self.stacked(n) for n in self.buffer_names}

        def member(params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template, (params, buffers), (x,))

        # each member draws its own dropout masks
        return torch.vmap(member, randomness="different")(params, buffers, x)

    def extra_repr(self) -> str:
        return f"members={self.size}, template={type(self.template).__name__}"


@torch.no_grad()
def write_members(stack: StackedModel, members: Sequence[nn.Module]) -> None:
    """Copies each member's slice of the stack into the member model (to save, evaluate or restack it)."""
    for i, member in enumerate(members):
        state = member.state_dict(keep_vars=True)
        for name in (*stack.param_names, *stack.buffer_names):
            state[name].copy_(stack.stacked(name)[i])


def stacked_optimizer(stack: StackedModel, member: nn.Module, optimizer: torch.optim.Optimizer):
    """An optimiser of `optimizer`'s type and settings over the stack, its parameter groups in the
    member optimiser's order, so that its state is the members' stacked (`stack_state`).

    Elementwise optimisers (SGD, AdamW: the ones training uses) update each member exactly as
    alone; one that mixes a parameter's elements (a global gradient norm) would mix members."""
    names = {id(p): n for n, p in member.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        settings = {k: v for k, v in group.items() if k != "params"}
        groups.append({**settings, "params": [stack.stacked(names[id(p)]) for p in group["params"]]})
    # the defaults its constructor takes (AdamW records decoupled_weight_decay, which it sets itself)
    takes = inspect.signature(type(optimizer)).parameters
    return type(optimizer)(groups, **{k: v for k, v in optimizer.defaults.items() if k in takes})


def _per_member(value: Any) -> bool:
    """Whether an optimiser state entry is per element of its parameter (stacked), not shared
    (a step count)."""
    return isinstance(value, torch.Tensor) and value.dim() > 0


def stack_state(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The members' optimiser state dicts (of `stacked_optimizer`'s source type) as the stack's."""
    first = states[0]
    stacked = {
        index: {
            key: torch.stack([s["state"][index][key] for s in states]) if _per_member(value) else value
            for key, value in entry.items()
        }
        for index, entry in first["state"].items()
    }
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}


def member_state(state: dict[str, Any], i: int) -> dict[str, Any]:
    """Member i's optimiser state dict, taken from the stack's: what it would be had it trained alone."""
    return {
        "state": {
            index: {key: value[i].clone() if _per_member(value) else value for key, value in entry.items()}
            for index, entry in state["state"].items()
        },
        "param_groups": copy.deepcopy(state["param_groups"]),
    }
