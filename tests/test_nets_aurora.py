"""Aurora-style generator: top-1 MoE routing on feature and w, the Switch load-balancing loss and
the generator's aux_loss. Shapes, conditioning and learning: test_nets_stylegan2.py (shared)."""
import copy

import pytest
import torch

from smart.nets.aurora import AttentionBlock, AuroraGenerator, MoEFeedForward, load_balancing_loss

torch.set_num_threads(2)


def make_moe(seed=0):
    torch.manual_seed(seed)
    return MoEFeedForward(channels=8, w_dim=6, num_experts=4, hidden_mult=2)


def make_g(**kw):
    torch.manual_seed(0)
    args = dict(z_dim=16, w_dim=32, img_resolution=16, img_channels=3, num_classes=10,
                channel_base=128, channel_max=32, num_experts=4, attn_resolutions=(4, 8), num_heads=2)
    return AuroraGenerator(**{**args, **kw})


def test_top1_routing_sends_each_token_to_exactly_one_expert():
    moe = make_moe()
    h, w = torch.randn(3, 20, 8), torch.randn(3, 6)
    out = moe(h, w)
    probs, index = moe.route(h, w)
    assert index.shape == (3, 20) and probs.shape == (3, 20, 4)
    assert torch.allclose(probs.sum(-1), torch.ones(3, 20))
    every_expert = torch.stack([expert(h) for expert in moe.experts], dim=-2)  # (B, N, E, C)
    chosen = every_expert.gather(2, index[..., None, None].expand(-1, -1, 1, 8)).squeeze(2)
    gate = probs.gather(2, index[..., None])
    assert torch.allclose(out, gate * chosen, atol=1e-6)
    assert len(index.unique()) > 1  # the check above compared against more than one expert


def test_routing_depends_on_w():
    moe = make_moe()
    h = torch.randn(1, 64, 8).expand(2, -1, -1)   # the same features for both samples
    w = torch.randn(2, 6)
    _, index = moe.route(h, w)
    changed = (index[0] != index[1]).sum()
    assert 0 < changed < 64


def test_load_balancing_loss_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    index = probs.argmax(1)                        # experts 0, 1, 0, 2
    # f = (1/2, 1/4, 1/4), P = (0.4, 0.375, 0.225): 3 · (0.2 + 0.09375 + 0.05625) = 1.05
    assert load_balancing_loss(probs, index).item() == pytest.approx(1.05)


def test_load_balancing_loss_is_one_when_balanced_and_larger_otherwise():
    uniform = torch.full((8, 4), 0.25)
    balanced = torch.arange(8) % 4
    assert load_balancing_loss(uniform, balanced).item() == pytest.approx(1.0)
    torch.manual_seed(0)
    random_probs = torch.rand(8, 4).softmax(1)    # f uniform: P does not matter
    assert load_balancing_loss(random_probs, balanced).item() == pytest.approx(1.0)
    # A certain router (P = f): E·Σ f_e², minimal at f uniform, E when all tokens share an expert.
    for index, expected in [(balanced, 1.0), (torch.tensor([0, 0, 0, 0, 1, 1, 2, 3]), 1.375),
                            (torch.zeros(8, dtype=torch.long), 4.0)]:
        certain = torch.nn.functional.one_hot(index, 4).float()
        assert load_balancing_loss(certain, index).item() == pytest.approx(expected)


def test_generator_aux_loss_is_a_differentiable_scalar_reaching_the_routers():
    G = make_g()
    moes = [m for m in G.modules() if isinstance(m, MoEFeedForward)]
    assert len(moes) == 2
    G(torch.randn(8, 16), torch.randint(0, 10, (8,)))
    aux = G.aux_loss
    assert aux.shape == () and aux.requires_grad and torch.isfinite(aux)
    assert 0.5 < aux.item() < 2 * 4           # two layers, each in (0, E]
    aux.backward()
    for m in moes:
        assert m.router.weight.grad.abs().sum() > 0 and m.w_proj.weight.grad.abs().sum() > 0


def test_aux_loss_is_the_sum_of_the_layers_losses():
    G = make_g()
    seen = []
    for m in G.modules():
        if isinstance(m, MoEFeedForward):
            m.register_forward_hook(lambda mod, args, out: seen.append(mod.aux_loss.detach()))
    G(torch.randn(4, 16), torch.randint(0, 10, (4,)))
    assert len(seen) == 2 and torch.allclose(G.aux_loss, sum(seen))


def test_aux_loss_is_zero_without_moe_layers():
    G = make_g(attn_resolutions=())
    assert G.aux_loss.item() == 0                 # before any forward
    G(torch.randn(2, 16), torch.randint(0, 10, (2,)))
    assert G.aux_loss.item() == 0


def test_experts_used_by_a_batch_get_gradients():
    G = make_g()
    G(torch.randn(16, 16), torch.randint(0, 10, (16,))).square().mean().backward()
    for m in (m for m in G.modules() if isinstance(m, MoEFeedForward)):
        with_grad = [e[0].weight.grad is not None and e[0].weight.grad.abs().sum() > 0 for e in m.experts]
        assert sum(with_grad) >= 2


def test_generator_copies_after_a_forward():
    G = make_g()
    G(torch.randn(2, 16), torch.randint(0, 10, (2,)))
    G_ema = copy.deepcopy(G)                      # the trainer's EMA copy
    assert G_ema.aux_loss.item() == 0 and G.aux_loss.requires_grad
    z, y = torch.randn(2, 16), torch.randint(0, 10, (2,))
    torch.manual_seed(1)
    a = G(z, y)
    torch.manual_seed(1)
    assert torch.equal(a, G_ema(z, y))
    assert G_ema.aux_loss.item() > 0              # the copy collects from its own MoE layers


def test_heads_must_divide_channels():
    with pytest.raises(ValueError, match="num_heads"):
        AttentionBlock(channels=12, w_dim=4, num_heads=5, num_experts=2, ffn_mult=2)
