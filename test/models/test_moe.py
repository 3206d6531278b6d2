"""Sparse MoE: routing, gate modes, dispatch cost, auxiliary losses (paper eqs. 1-8) and router learning."""
import math

import pytest
import torch

from tramoe_ros.config import GateMode
from tramoe_ros.models.layers import FeedForward
from tramoe_ros.models.moe import RoutingInfo, SparseMoE, load_balance_loss, router_z_loss, top_k_gates


def naive_moe(moe: SparseMoE, x: torch.Tensor, routing: RoutingInfo) -> torch.Tensor:
    """Token-by-token eq. 4 from the layer's routing decisions: (B, S, D) -> (B * S, D)."""
    tokens = x.reshape(-1, x.shape[-1])
    out = torch.zeros_like(tokens)
    for s in range(tokens.shape[0]):
        for slot in range(routing.expert_index.shape[1]):
            expert = moe.experts[int(routing.expert_index[s, slot])]
            out[s] += routing.gates[s, slot] * expert(tokens[s])
    return out


def count_expert_rows(moe: SparseMoE) -> tuple[list[int], list]:
    """Forward hooks adding up the rows each expert receives."""
    rows = [0] * moe.num_experts
    handles = []
    for i, expert in enumerate(moe.experts):
        def hook(module, inputs, output, i=i):
            rows[i] += inputs[0].shape[0]
        handles.append(expert.register_forward_hook(hook))
    return rows, handles


@pytest.mark.parametrize("gate_mode", list(GateMode))
@pytest.mark.parametrize("top_k", [1, 2])
def test_output_matches_per_token_computation(gate_mode, top_k):
    torch.manual_seed(0)
    moe = SparseMoE(dim=16, hidden=32, num_experts=4, top_k=top_k, gate_mode=gate_mode).eval()
    x = torch.randn(3, 7, 16)
    out, routing = moe(x)
    assert out.shape == (3, 7, 16)
    assert routing.expert_index.shape == (21, top_k)
    # Selected experts of a token are distinct and the best-ranked first.
    chosen_logits = routing.logits.gather(1, routing.expert_index)
    assert torch.all(chosen_logits[:, 0] == routing.logits.max(dim=1).values)
    assert all(len(set(row.tolist())) == top_k for row in routing.expert_index)
    torch.testing.assert_close(out.reshape(21, 16), naive_moe(moe, x, routing), atol=1e-6, rtol=1e-5)
    with torch.no_grad():  # inference path (the straight-through top-1 gate product is skipped there)
        out_no_grad, _ = moe(x)
    torch.testing.assert_close(out_no_grad, out, atol=0, rtol=0)


@pytest.mark.parametrize("gate_mode", list(GateMode))
@pytest.mark.parametrize("top_k", [1, 2])
def test_gradients_match_per_token_computation(gate_mode, top_k):
    """The sorted dispatch and its in-place write-back give the same gradients as eq. 4 token by token."""
    torch.manual_seed(8)
    moe = SparseMoE(dim=8, hidden=16, num_experts=4, top_k=top_k, gate_mode=gate_mode).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    target = torch.randn(12, 8, dtype=torch.float64)
    out, _ = moe(x)
    ((out.reshape(12, 8) - target) ** 2).sum().backward()
    fast = [p.grad.clone() for p in moe.parameters()] + [x.grad.clone()]
    moe.zero_grad()
    x.grad = None
    routing = moe.route(x.reshape(12, 8))
    ((naive_moe(moe, x, routing) - target) ** 2).sum().backward()
    slow = [p.grad for p in moe.parameters()] + [x.grad]
    assert moe.router.weight.grad.abs().sum() > 0
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b)


def test_top1_routes_every_token_to_exactly_one_expert():
    torch.manual_seed(1)
    moe = SparseMoE(dim=16, hidden=32, num_experts=4, top_k=1).eval()
    x = torch.randn(2, 50, 16)
    rows, handles = count_expert_rows(moe)
    out, routing = moe(x)
    for h in handles:
        h.remove()
    assert routing.expert_index.shape == (100, 1)
    assert sum(rows) == 100
    assert rows == torch.bincount(routing.expert_index[:, 0], minlength=4).tolist()


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_dispatch_runs_each_token_copy_once(top_k):
    """FLOPs per token stay constant: experts see tokens * top_k rows in total, never every token each."""
    torch.manual_seed(2)
    moe = SparseMoE(dim=16, hidden=32, num_experts=4, top_k=top_k).eval()
    rows, handles = count_expert_rows(moe)
    moe(torch.randn(4, 25, 16))
    for h in handles:
        h.remove()
    assert sum(rows) == 100 * top_k


def test_expert_without_tokens_is_skipped():
    torch.manual_seed(3)
    moe = SparseMoE(dim=8, hidden=16, num_experts=4, top_k=1).eval()
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[3, 0] = -10.0  # x[..., 0] > 0 below, so expert 3 always scores lowest
        moe.router.weight[0, 1] = 1.0
        moe.router.weight[1, 1] = -1.0
    x = torch.randn(2, 30, 8)
    x[..., 0] = x[..., 0].abs() + 0.1
    rows, handles = count_expert_rows(moe)
    out, routing = moe(x)
    for h in handles:
        h.remove()
    assert rows[3] == 0 and sum(rows) == 60
    torch.testing.assert_close(out.reshape(60, 8), naive_moe(moe, x, routing), atol=1e-6, rtol=1e-5)


def test_straight_through_gate_is_exactly_one_and_router_gets_gradient():
    torch.manual_seed(4)
    moe = SparseMoE(dim=16, hidden=32, num_experts=4, top_k=1, gate_mode=GateMode.STRAIGHT_THROUGH)
    out, routing = moe(torch.randn(2, 40, 16))
    assert torch.equal(routing.gates, torch.ones(80, 1))
    # The loss depends on the outputs only; the router still gets the softmax-probability gradient.
    out.square().mean().backward()
    assert moe.router.weight.grad is not None
    assert moe.router.weight.grad.abs().sum() > 0


def test_straight_through_top2_forward_is_softmax_over_top2_logits():
    logits = torch.tensor([[0.0, 1.0, 3.0, 2.0], [4.0, 0.0, 0.0, 1.0]], requires_grad=True)
    index, gates, probs = top_k_gates(logits, 2, GateMode.STRAIGHT_THROUGH)
    assert index.tolist() == [[2, 3], [0, 3]]
    torch.testing.assert_close(gates.detach(), torch.tensor([[3.0, 2.0], [4.0, 1.0]]).softmax(dim=1))
    # Backward is that of the full-softmax probabilities of the selected experts.
    gates[:, 0].sum().backward()
    expected = torch.autograd.grad(logits.softmax(dim=1)[[0, 1], [2, 0]].sum(), logits)[0]
    torch.testing.assert_close(logits.grad, expected)


def test_softmax_prob_gate_is_max_probability():
    torch.manual_seed(5)
    logits = torch.randn(30, 4)
    index, gates, probs = top_k_gates(logits, 1, GateMode.SOFTMAX_PROB)
    torch.testing.assert_close(gates[:, 0], logits.softmax(dim=1).max(dim=1).values)
    torch.testing.assert_close(probs, logits.softmax(dim=1))


def test_renormalized_gate_is_p1_over_p1_plus_p2():
    logits = torch.tensor([[0.0, math.log(3.0), math.log(2.0), -1.0]])
    index, gates, probs = top_k_gates(logits, 1, GateMode.RENORMALIZED)
    # p = [1, 3, 2, e^-1] / Z: p1 / (p1 + p2) = 3 / (3 + 2)
    assert index.tolist() == [[1]]
    assert gates.item() == pytest.approx(0.6, abs=1e-6)
    torch.manual_seed(6)
    logits = torch.randn(40, 4)
    index, gates, probs = top_k_gates(logits, 1, GateMode.RENORMALIZED)
    top2 = logits.softmax(dim=1).topk(2, dim=1).values
    torch.testing.assert_close(gates[:, 0], top2[:, 0] / (top2[:, 0] + top2[:, 1]))


def test_router_z_loss_matches_eq8_by_hand():
    # logsumexp: row 1 = ln(1 + 3) = 2 ln 2; row 2 = ln(1 + 1) = ln 2  ->  mean of squares = 2.5 (ln 2)^2
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    assert router_z_loss(logits).item() == pytest.approx(1.2011325, abs=1e-6)


def test_load_balance_loss_matches_eq7_by_hand():
    probs = torch.tensor([[0.25, 0.75], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3]], requires_grad=True)
    expert_index = torch.tensor([[1], [1], [1], [0]])
    # Q = [1/4, 3/4]; P = [1.65/4, 2.35/4] = [0.4125, 0.5875]; N * sum Q P = 2 * (0.103125 + 0.440625)
    loss = load_balance_loss(probs, expert_index)
    assert loss.item() == pytest.approx(1.0875, abs=1e-6)
    # Q is a count (no gradient); d loss / d p_si = N Q_i / S.
    loss.backward()
    torch.testing.assert_close(probs.grad, torch.tensor([[0.125, 0.375]]).expand(4, 2))
    info = RoutingInfo(logits=probs.detach().log(), probs=probs.detach(), expert_index=expert_index,
                       gates=torch.ones(4, 1))
    torch.testing.assert_close(info.expert_fractions(), torch.tensor([0.25, 0.75]))


def test_balanced_router_gives_load_balance_one():
    probs = torch.full((8, 4), 0.25)
    expert_index = torch.arange(8).remainder(4)[:, None]
    assert load_balance_loss(probs, expert_index).item() == pytest.approx(1.0)


def test_gating_noise_only_in_training_and_z_loss_sees_clean_logits():
    torch.manual_seed(7)
    moe = SparseMoE(dim=16, hidden=32, num_experts=4, top_k=1, gating_noise=1.0)
    x = torch.randn(1, 200, 16)
    clean_logits = moe.router(x[0])
    _, first = moe(x)
    _, second = moe(x)
    torch.testing.assert_close(first.logits, clean_logits)
    assert not torch.equal(first.expert_index, second.expert_index)
    moe.eval()
    _, first = moe(x)
    _, second = moe(x)
    assert torch.equal(first.expert_index, second.expert_index)
    assert torch.equal(first.expert_index[:, 0], clean_logits.argmax(dim=1))


def _two_cluster_batch(generator: torch.Generator, maps: torch.Tensor, n: int):
    """Tokens around +3 e0 (cluster 0) or -3 e0 (cluster 1); targets are a different linear map per cluster."""
    cluster = torch.randint(0, 2, (n,), generator=generator)
    x = torch.randn(n, maps.shape[-1], generator=generator)
    x[:, 0] += 3.0 - 6.0 * cluster
    return x, torch.einsum("nij,nj->ni", maps[cluster], x), cluster


def _cluster_purity(expert_index: torch.Tensor, cluster: torch.Tensor, num_experts: int) -> float:
    """Fraction of tokens that share their expert with the majority of that expert's tokens' cluster."""
    joint = torch.zeros(num_experts, 2)
    joint.index_put_((expert_index[:, 0], cluster), torch.ones(len(cluster)), accumulate=True)
    return joint.max(dim=1).values.sum().item() / len(cluster)


def _train(model: torch.nn.Module, maps: torch.Tensor, seed: int, steps: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x, y, _ = _two_cluster_batch(generator, maps, 256)
        out = model(x[None])
        out = out[0] if isinstance(out, tuple) else out
        loss = (out[0] - y).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_router_learns_cluster_routing_with_default_gate():
    """Two token clusters need different linear maps. The router starts blind to the cluster axis and is trained
    by the output loss only (default straight-through gate): routing becomes cluster-consistent and the MoE
    beats one expert of the same size trained the same way."""
    torch.manual_seed(0)
    dim, hidden, steps = 8, 16, 300
    maps = torch.randn(2, dim, dim, generator=torch.Generator().manual_seed(0))
    moe = SparseMoE(dim, hidden, num_experts=4, top_k=1)
    assert moe.gate_mode is GateMode.STRAIGHT_THROUGH
    with torch.no_grad():
        moe.router.weight[:, 0] = 0.0  # initial routing ignores the feature that separates the clusters
    router_before = moe.router.weight.detach().clone()
    x_test, y_test, cluster_test = _two_cluster_batch(torch.Generator().manual_seed(99), maps, 2000)
    with torch.no_grad():
        purity_before = _cluster_purity(moe(x_test[None])[1].expert_index, cluster_test, 4)

    _train(moe, maps, seed=1, steps=steps)
    single = FeedForward(dim, hidden)
    _train(single, maps, seed=1, steps=steps)

    with torch.no_grad():
        out, routing = moe(x_test[None])
        moe_mse = (out[0] - y_test).square().mean().item()
        single_mse = (single(x_test) - y_test).square().mean().item()
    purity_after = _cluster_purity(routing.expert_index, cluster_test, 4)
    assert purity_before < 0.7
    assert purity_after > 0.9
    assert moe_mse < 0.75 * single_mse
    assert (moe.router.weight[:, 0] - router_before[:, 0]).abs().max() > 0.1
