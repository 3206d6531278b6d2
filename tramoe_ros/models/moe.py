"""Sparsely-gated mixture of experts (paper Sec. 3.2-3.3, eqs. 1-8), torch only.

Routing: a bias-free linear router maps each token to N logits g (eq. 2 input); each token is sent to its top-k
experts and their outputs are summed, weighted by a gate value (eq. 4). With the paper's k = 1 the FLOPs per token
equal the dense FFN's.

Gate choice. Eq. 1 takes the softmax over the top-k logits only, so for k = 1 the gate is identically 1 and the
track loss gives the router no gradient: the router could only learn from the auxiliary losses. The reference
code instead weights the expert by p_1 / (p_1 + p_2), renormalising against the runner-up, which changes the
forward values the paper describes. The default here, `GateMode.STRAIGHT_THROUGH`, keeps eq. 1's forward value
exactly (1 for k = 1) and back-propagates the gradient of the selected experts' full-softmax probabilities, i.e.
the Switch Transformer learning signal: gate = eq1 + (p - p.detach()). Forward outputs therefore match the paper,
while the router's probability for the chosen expert rises when scaling that expert's output up would lower the
task loss and falls otherwise, which moves tokens to other experts (`test_moe.py` checks that routing becomes
consistent on a toy task). The forward/backward mismatch makes this signal the least robust of the three at
large learning rates; the Switch Transformer gate (`SOFTMAX_PROB`) and the reference-code gate (`RENORMALIZED`)
are selectable for ablations.

Dispatch keeps the FLOPs per token constant: token copies are sorted by expert, each expert runs once on its
contiguous slice, and each result row is written back to its copy's place. No token is ever dropped (no capacity
limit), and an expert that receives no token in a batch is skipped. Skipped experts get no gradient in that step,
so under DistributedDataParallel wrap the model with ``find_unused_parameters=True``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tramoe_ros.config import GateMode
from tramoe_ros.models.layers import FeedForward

# The reference code's epsilon in p_1 / (p_1 + p_2 + eps).
_RENORM_EPS = 1e-9


@dataclass
class RoutingInfo:
    """What one MoE layer's router decided for S = batch * sequence tokens and N experts.

    Attributes:
        logits: (S, N) router logits before gating noise (the z-loss input, eq. 8)
        probs: (S, N) softmax over all N experts of the logits the tokens were routed with (noisy in training
            when gating noise is on); the P_i input of eq. 6
        expert_index: (S, k) long, the selected experts, best first
        gates: (S, k) gate values that multiplied the experts' outputs
    """

    logits: torch.Tensor
    probs: torch.Tensor
    expert_index: torch.Tensor
    gates: torch.Tensor

    @property
    def num_experts(self) -> int:
        return self.logits.shape[-1]

    def expert_fractions(self) -> torch.Tensor:
        """Q_i of eq. 5: the fraction of tokens whose top-1 expert is i.

        Returns:
            (N,) float, detached, sums to 1
        """
        return top1_fractions(self.expert_index, self.num_experts)


def top1_fractions(expert_index: torch.Tensor, num_experts: int) -> torch.Tensor:
    """Eq. 5: fraction of tokens whose argmax (top-1) expert is i.

    Args:
        expert_index: (S, k) long, best first
    Returns:
        (N,) float32, detached
    """
    top1 = expert_index[:, 0].detach()
    counts = torch.bincount(top1, minlength=num_experts)
    return counts.float() / max(top1.numel(), 1)


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """Router z-loss, eq. 8: mean over tokens of (logsumexp_i g_i)^2.

    Args:
        logits: (S, N) router logits (clean, before gating noise)
    Returns:
        scalar
    """
    return torch.logsumexp(logits.float(), dim=-1).square().mean()


def load_balance_loss(probs: torch.Tensor, expert_index: torch.Tensor) -> torch.Tensor:
    """Load-balancing loss, eq. 7: N * sum_i Q_i P_i.

    Q_i (eq. 5) counts top-1 assignments and carries no gradient; P_i (eq. 6) is the mean router probability,
    through which the loss pushes the router towards uniform use. Equals 1 for a perfectly balanced router.

    Args:
        probs: (S, N) softmax over all experts
        expert_index: (S, k) long, best first
    Returns:
        scalar
    """
    num_experts = probs.shape[-1]
    fractions = top1_fractions(expert_index, num_experts).to(probs.dtype)
    mean_probs = probs.mean(dim=0)
    return num_experts * (fractions * mean_probs).sum()


def top_k_gates(logits: torch.Tensor, k: int, gate_mode: GateMode) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick each token's top-k experts (eqs. 2-3) and their gate values.

    Args:
        logits: (S, N) the logits to route with (gating noise already added, if any)
        k: experts per token
        gate_mode: how the gate values are formed, see the module docstring
    Returns:
        expert_index (S, k) long best first, gates (S, k), probs (S, N) softmax over all experts
    """
    probs = logits.softmax(dim=-1)
    num_experts = logits.shape[-1]
    if gate_mode is GateMode.RENORMALIZED:
        # Reference code: renormalise the selected probabilities against themselves plus the runner-up.
        top_probs, top_index = probs.topk(min(k + 1, num_experts), dim=-1)
        gates = top_probs[:, :k] / (top_probs.sum(dim=-1, keepdim=True) + _RENORM_EPS)
        return top_index[:, :k], gates, probs
    top_logits, expert_index = logits.topk(k, dim=-1)
    selected_probs = probs.gather(-1, expert_index)
    if gate_mode is GateMode.SOFTMAX_PROB:
        return expert_index, selected_probs, probs
    if gate_mode is GateMode.STRAIGHT_THROUGH:
        # Paper eq. 1 forward value (softmax over the top-k logits only; exactly 1 for k = 1), with the gradient
        # of the full-softmax probability. (p - p.detach()) is exactly 0, so the forward value is exact.
        eq1_gates = top_logits.detach().softmax(dim=-1)
        return expert_index, eq1_gates + (selected_probs - selected_probs.detach()), probs
    raise ValueError(f"unknown gate mode {gate_mode!r}")


class SparseMoE(nn.Module):
    """Sparse MoE FFN (eq. 4): a bias-free linear router and N `FeedForward` experts, top-k token choice.

    The router sees the block's normalised input (the paper's x_s); the reference code routes the un-normalised
    residual stream instead.
    """

    def __init__(self, dim: int, hidden: int, num_experts: int, top_k: int = 1,
                 gate_mode: GateMode = GateMode.STRAIGHT_THROUGH, gating_noise: float = 0.0, dropout: float = 0.0):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k {top_k} must be in 1..num_experts ({num_experts})")
        self.num_experts, self.top_k = num_experts, top_k
        self.gate_mode = GateMode(gate_mode)
        self.gating_noise = gating_noise
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(dim, hidden, dropout) for _ in range(num_experts))

    def route(self, tokens: torch.Tensor) -> RoutingInfo:
        """Router decisions for flat tokens.

        Args:
            tokens: (S, dim)
        Returns:
            RoutingInfo over the S tokens
        """
        # Router in float32 even under autocast (ST-MoE's selective precision): bf16 logits make the softmax
        # and top-k choice noisy.
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            logits = F.linear(tokens.float(), self.router.weight.float())
        routing_logits = logits
        if self.training and self.gating_noise > 0:
            # Noisy top-k gating (paper Tab. 1c); the z-loss still sees the clean logits.
            routing_logits = logits + torch.randn_like(logits) * self.gating_noise
        expert_index, gates, probs = top_k_gates(routing_logits, self.top_k, self.gate_mode)
        return RoutingInfo(logits=logits, probs=probs, expert_index=expert_index, gates=gates)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, RoutingInfo]:
        """
        Args:
            x: (B, S, dim) normalised block input
        Returns:
            (B, S, dim) the gate-weighted sum of each token's top-k experts, and the routing over B * S tokens
        """
        batch = x.shape[0]
        tokens = rearrange(x, "b s d -> (b s) d")
        routing = self.route(tokens)
        # One row per (token, slot) copy, row c = token c // k, slot c % k; sorted by expert so that each
        # expert's copies are contiguous.
        copy_expert = rearrange(routing.expert_index, "s k -> (s k)")
        copy_gate = rearrange(routing.gates, "s k -> (s k)")
        order = torch.argsort(copy_expert, stable=True)
        dispatched = tokens.index_select(0, order // self.top_k)
        rows_per_expert = torch.bincount(copy_expert, minlength=self.num_experts).tolist()
        # Each copy is written exactly once, so the results go back by index_copy_ (parallel on CPU), not by
        # an accumulating index_add_ scatter. The buffer takes the experts' output dtype (autocast).
        per_copy: torch.Tensor | None = None
        for expert, rows, copies in zip(self.experts, dispatched.split(rows_per_expert),
                                        order.split(rows_per_expert)):
            if copies.numel() == 0:
                continue
            expert_out = expert(rows)
            if per_copy is None:
                per_copy = expert_out.new_empty(copy_expert.shape[0], expert_out.shape[1])
            per_copy.index_copy_(0, copies, expert_out)
        if per_copy is None:
            per_copy = tokens.new_empty(0, tokens.shape[1])
        # The straight-through top-1 gate is exactly 1 in the forward pass; without autograd the product is the
        # identity, so inference skips it. Otherwise one product in copy order, after all experts, keeps the
        # number of parallel CPU ops per layer small.
        gate_is_identity = (self.gate_mode is GateMode.STRAIGHT_THROUGH and self.top_k == 1
                            and not copy_gate.requires_grad)
        if not gate_is_identity:
            per_copy = per_copy * copy_gate.to(per_copy.dtype)[:, None]
        per_slot = rearrange(per_copy, "(s k) d -> s k d", k=self.top_k)
        out = per_slot[:, 0] if self.top_k == 1 else per_slot.sum(dim=1)
        return rearrange(out, "(b s) d -> b s d", b=batch), routing
