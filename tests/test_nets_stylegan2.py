"""StyleGAN2 discriminator, and the generator contract both style-based generators share
(StyleGAN2 and Aurora-style): shapes, conditioning, noise, gradients, learning.
MoE-specific checks live in test_nets_aurora.py."""
import pytest
import torch

from smart.losses import AdversarialLoss, R1Penalty
from smart.nets.aurora import AuroraGenerator
from smart.nets.layers import ModulatedConv2d
from smart.nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator, minibatch_std

torch.set_num_threads(2)

SMALL = dict(channel_base=128, channel_max=32)
KINDS = ["stylegan2", "aurora"]
RESOLUTIONS = [8, 16, 32]


def make_g(kind, res, num_classes=0, img_channels=3):
    common = dict(z_dim=16, w_dim=32, img_resolution=res, img_channels=img_channels,
                  num_classes=num_classes, **SMALL)
    if kind == "stylegan2":
        return StyleGAN2Generator(**common)
    return AuroraGenerator(**common, num_experts=4, attn_resolutions=(4, 8), num_heads=2)


def make_d(res, num_classes=0, img_channels=3):
    return StyleGAN2Discriminator(res, img_channels, num_classes=num_classes, **SMALL)


def seeded(fn, *args, seed=0):
    """Call with the global RNG seeded, so the generators' per-call noise repeats."""
    torch.manual_seed(seed)
    return fn(*args)


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_per_sample_weights(demodulate):
    """The paper's definition: scale W by the style per input channel, normalise per output."""
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, w_dim=4, demodulate=demodulate)
    x, w = torch.randn(3, 5, 6, 6), torch.randn(3, 4)
    styles = conv.affine(w)
    for b in range(3):
        weight = conv.weight * conv.weight_gain * styles[b][None, :, None, None]
        if demodulate:
            weight = weight / (weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        expected = torch.nn.functional.conv2d(x[b : b + 1], weight, padding=1)
        assert torch.allclose(conv(x, w)[b : b + 1], expected, atol=1e-5)


@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_generator_shapes_and_attributes(kind, res, num_classes):
    torch.manual_seed(0)
    G = make_g(kind, res, num_classes)
    assert (G.z_dim, G.num_classes, G.conditional) == (16, num_classes, num_classes > 0)
    assert (G.img_resolution, G.img_channels) == (res, 3)
    labels = torch.randint(0, 10, (5,)) if num_classes else None
    img = G(torch.randn(5, 16), labels)
    assert img.shape == (5, 3, res, res) and img.dtype == torch.float32
    assert torch.isfinite(img).all() and 0.1 < img.std() < 10
    if res == 8:  # the dtype follows the module
        img64 = G.double()(torch.randn(2, 16, dtype=torch.float64), labels[:2] if num_classes else None)
        assert img64.dtype == torch.float64


@pytest.mark.parametrize("kind", KINDS)
def test_labels_change_generator_output(kind):
    torch.manual_seed(0)
    G = make_g(kind, 8, num_classes=10)
    z = torch.randn(4, 16)
    y, y_other = torch.tensor([0, 1, 2, 3]), torch.tensor([4, 5, 6, 7])
    a = seeded(G, z, y)
    assert torch.equal(a, seeded(G, z, y))
    assert torch.allclose(a, seeded(G, z, torch.nn.functional.one_hot(y, 10).float()), atol=1e-5)
    b = seeded(G, z, y_other)
    assert (a - b).flatten(1).abs().amax(1).min() > 1e-3  # every sample changed
    with pytest.raises(ValueError, match="labels"):
        G(z)


def test_noise_is_drawn_per_call():
    torch.manual_seed(0)
    G = make_g("stylegan2", 16)
    for layer in (m for b in G.blocks for m in b.layers):
        layer.noise_strength.data.fill_(0.5)
    z = torch.randn(2, 16)
    assert not torch.allclose(G(z), G(z))
    assert torch.equal(seeded(G, z, seed=3), seeded(G, z, seed=3))


@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("res", RESOLUTIONS)
def test_discriminator_shapes(res, num_classes):
    torch.manual_seed(0)
    D = make_d(res, num_classes)
    labels = torch.randint(0, 10, (6,)) if num_classes else None
    logits = D(torch.randn(6, 3, res, res), labels)
    assert logits.shape == (6,) and logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_projection_conditioning_changes_logit():
    torch.manual_seed(0)
    D = make_d(16, num_classes=10)
    x = torch.randn(4, 3, 16, 16)
    a, b = D(x, torch.tensor([0, 1, 2, 3])), D(x, torch.tensor([4, 5, 6, 7]))
    assert (a - b).abs().min() > 1e-4
    with pytest.raises(ValueError, match="labels"):
        D(x)


@pytest.mark.parametrize("res", [2, 12, 0])
def test_bad_resolution_is_refused(res):
    with pytest.raises(ValueError, match="img_resolution"):
        make_d(res)
    with pytest.raises(ValueError, match="img_resolution"):
        make_g("stylegan2", res)


def test_minibatch_std_groups_any_batch_size():
    torch.manual_seed(0)
    x = torch.randn(9, 2, 4, 4)
    stat = minibatch_std(x, group_size=4)[:, 2]
    by_hand = [x[g].std(dim=0, unbiased=False).mean() for g in (slice(0, 4), slice(4, 9))]
    assert torch.allclose(stat[:4], by_hand[0].expand(4, 4, 4), atol=1e-5)
    assert torch.allclose(stat[4:], by_hand[1].expand(5, 4, 4), atol=1e-5)  # remainder joins
    small = minibatch_std(x[:3], group_size=4)[:, 2]                         # fewer than a group
    assert torch.allclose(small, x[:3].std(dim=0, unbiased=False).mean().expand(3, 4, 4), atol=1e-5)
    assert torch.isfinite(minibatch_std(x[:1], group_size=4)).all()


@pytest.mark.parametrize("batch", [1, 3, 5, 7])
def test_discriminator_odd_batches(batch):
    torch.manual_seed(0)
    D = make_d(8)
    x = torch.randn(batch, 3, 8, 8, requires_grad=True)
    logits = D(x)
    assert logits.shape == (batch,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_minibatch_std_couples_only_a_group():
    torch.manual_seed(0)
    D = make_d(8)
    x = torch.randn(8, 3, 8, 8)
    y = x.clone()
    y[5] += 1.0
    diff = (D(x) - D(y)).abs()
    assert diff[4] > 1e-6 and diff[0] == 0  # sample 4 shares sample 5's group, sample 0 does not


def test_r1_double_backward_through_discriminator():
    torch.manual_seed(0)
    D = make_d(16, num_classes=10)
    real, labels = torch.randn(6, 3, 16, 16), torch.randint(0, 10, (6,))
    penalty = R1Penalty(1.0)(D, real, labels)
    assert penalty.requires_grad and penalty > 0
    penalty.backward()
    # ∇_x D does not depend on biases behind only piecewise-linear layers, so R1 reaches the weights.
    for name, p in D.named_parameters():
        if name.endswith("weight"):
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def assert_all_gradients(module, skip=lambda name: False):
    for name, p in module.named_parameters():
        if not skip(name):
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("kind", KINDS)
def test_every_parameter_gets_gradients_in_a_gan_step(kind, num_classes):
    torch.manual_seed(0)
    G, D = make_g(kind, 8, num_classes), make_d(8, num_classes)
    labels = torch.randint(0, 10, (8,)) if num_classes else None
    loss = AdversarialLoss().generator(D(G(torch.randn(8, 16), labels), labels))
    if kind == "aurora":
        loss = loss + 0.01 * G.aux_loss
    loss.backward()
    assert_all_gradients(G, skip=lambda name: ".experts." in name)  # experts: see aurora tests
    assert_all_gradients(D)


@pytest.mark.parametrize("kind", KINDS)
def test_generator_learns_a_fixed_batch(kind):
    torch.manual_seed(0)
    G = make_g(kind, 8, num_classes=10)
    z, labels = torch.randn(8, 16), torch.randint(0, 10, (8,))
    target = torch.rand(8, 3, 8, 8) * 2 - 1
    opt = torch.optim.Adam(G.parameters(), lr=0.01, betas=(0.0, 0.99))
    losses = []
    for _ in range(40):
        loss = (G(z, labels) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_discriminator_learns_to_separate_two_batches():
    torch.manual_seed(0)
    D = make_d(8, num_classes=10)
    real, fake = torch.rand(8, 3, 8, 8) * 2 - 1, torch.randn(8, 3, 8, 8) * 0.3
    labels = torch.randint(0, 10, (8,))
    opt = torch.optim.Adam(D.parameters(), lr=0.002, betas=(0.0, 0.99))
    losses = []
    for _ in range(30):
        loss = AdversarialLoss.discriminator(D(real, labels), D(fake, labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
