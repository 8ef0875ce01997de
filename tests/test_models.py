import copy
import hashlib
from types import SimpleNamespace

import pytest
import torch

from ganimate.errors import GanimateError
from ganimate.models import (
    ARCHITECTURES,
    ARCHS,
    ArchSpec,
    Discriminator,
    Generator,
    arch_defaults,
    build_models,
    check_arch,
    count_params,
    get_arch,
    register_arch,
)
from ganimate.models.dcgan import FastDiscriminator, FastGenerator, upsampling_plan


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes(arch, size, channels, num_classes):
    spec = get_arch(arch)
    G = spec.generator(z_dim=8, image_size=size, channels=channels, num_classes=num_classes, width=32)
    D = spec.discriminator(size, channels, num_classes, width=8)
    y = torch.arange(3) % 10 if num_classes else None
    x = G(torch.randn(3, 8), y)
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (3,)


def test_paper_architecture_follows_the_paper():
    G, D = Generator(num_classes=0), Discriminator("paper")
    assert G.fc.out_features == 7 * 7 * 256
    convT = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.kernel_size for m in convT] == [(5, 5)] * 3
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(64, (3, 3)), (128, (3, 3)), (256, (3, 3))]
    assert [m.p for m in D.modules() if isinstance(m, torch.nn.Dropout)] == [0.4]
    assert D.fc.out_features == 1


def test_deeper_discriminator_adds_a_3x3_convolution_after_each_downsampling():
    """The fast D's layers in order, each stride-2 block followed by a 3x3 convolution of its own width, normed
    where the block is; the fast D's layers keep their initial weights (they are built first, from one seed)."""
    torch.manual_seed(0)
    fast = Discriminator("fast", image_size=28, channels=1, num_classes=10, width=8)
    torch.manual_seed(0)
    D = Discriminator("deeper", image_size=28, channels=1, num_classes=10, width=8)
    kinds = [type(m).__name__ for m in D.features]
    assert kinds == ["Conv2d", "LeakyReLU", "Conv2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d",
                     "BatchNorm2d", "LeakyReLU", "Flatten", "Dropout"]
    convs = [m for m in D.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.bias is not None) for c in convs] == [
        (1, 8, (4, 4), (2, 2), True), (8, 8, (3, 3), (1, 1), True), (8, 16, (4, 4), (2, 2), True),
        (16, 16, (3, 3), (1, 1), False)]
    before = [m for m in fast.features if isinstance(m, torch.nn.Conv2d)]
    assert torch.equal(convs[0].weight, before[0].weight) and torch.equal(convs[2].weight, before[1].weight)
    assert D.fc.in_features == fast.fc.in_features == 16 * 7 * 7


def test_deepest_discriminator_adds_two_3x3_convolutions_after_each_downsampling():
    """The deeper D with a second 3x3 convolution of the same kind after each of its own; the layers the deeper D
    shares with it come first and keep their initial weights from one seed."""
    torch.manual_seed(0)
    deeper = Discriminator("deeper", image_size=28, channels=1, num_classes=10, width=8)
    torch.manual_seed(0)
    D = Discriminator("deepest", image_size=28, channels=1, num_classes=10, width=8)
    kinds = [type(m).__name__ for m in D.features]
    assert kinds == ["Conv2d", "LeakyReLU", "Conv2d", "LeakyReLU", "Conv2d", "LeakyReLU",
                     "Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d", "BatchNorm2d", "LeakyReLU", "Conv2d",
                     "BatchNorm2d", "LeakyReLU", "Flatten", "Dropout"]
    convs = [m for m in D.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.bias is not None) for c in convs] == [
        (1, 8, (4, 4), (2, 2), True), (8, 8, (3, 3), (1, 1), True), (8, 8, (3, 3), (1, 1), True),
        (8, 16, (4, 4), (2, 2), True), (16, 16, (3, 3), (1, 1), False), (16, 16, (3, 3), (1, 1), False)]
    shared = [m for m in deeper.features if isinstance(m, torch.nn.Conv2d)]
    assert all(torch.equal(convs[i].weight, shared[j].weight) for i, j in [(0, 0), (1, 1), (3, 2)])
    assert D.fc.in_features == deeper.fc.in_features == 16 * 7 * 7
    assert D(torch.randn(4, 1, 28, 28), torch.arange(4)).shape == (4,)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_paper_discriminator_computes_3x3_convolutions_then_2x2_average_pooling(layout):
    """Each block's convolution and pooling run as one 4x4 stride-2 convolution: it must compute what the paper's
    pair computes (here in float64, on odd sides too), from the same state dict, in the input's layout."""
    torch.manual_seed(0)
    D = Discriminator("paper", image_size=27, channels=3, num_classes=10, width=8).double().eval()
    D = D.to(memory_format=layout)
    blocks = [m for m in D.features if isinstance(m, torch.nn.Conv2d)]
    ref = copy.deepcopy(D)
    for i, m in enumerate(ref.features):  # the plain pair, from the same weights
        if isinstance(m, torch.nn.Conv2d):
            plain = torch.nn.Conv2d(m.in_channels, m.out_channels, 3, 1, 1).double()
            plain.load_state_dict(m.state_dict())
            ref.features[i], ref.features[i + 1] = plain, torch.nn.AvgPool2d(2)
    assert [(c.out_channels, c.kernel_size) for c in blocks] == [(8, (3, 3)), (16, (3, 3)), (32, (3, 3))]
    assert sorted(D.state_dict()) == sorted(ref.state_dict())
    x = torch.randn(4, 3, 27, 27, dtype=torch.float64).to(memory_format=layout)
    y = torch.arange(4)
    torch.testing.assert_close(D(x, y), ref(x, y), rtol=1e-10, atol=1e-10)
    h = D.features[:4](x)
    assert h.shape == (4, 8, 13, 13) and h.is_contiguous(memory_format=layout)


def test_channels_last_training_keeps_one_layout_in_the_backward_pass():
    """A channels-last pair must not hand a layer a gradient in the other layout (PyTorch's elementwise backward
    kernels then take a slow path): G's dense output is reshaped channels-last, D's flattened features send back a
    channels-last gradient, and D's first pooled convolution keeps a one-channel input's output channels-last."""
    from torch.utils._python_dispatch import TorchDispatchMode

    torch.manual_seed(0)
    G = Generator(z_dim=8, num_classes=10, width=32).to(memory_format=torch.channels_last)
    D = Discriminator("paper", num_classes=10, width=8).to(memory_format=torch.channels_last)
    mixed = []

    class Layouts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            four = [a for a in args if isinstance(a, torch.Tensor) and a.dim() == 4 and a.shape[1] > 1
                    and a.shape[2] * a.shape[3] > 1]
            if func in (torch.ops.aten.leaky_relu_backward.default, torch.ops.aten.native_batch_norm_backward.default):
                if len({a.is_contiguous() for a in four}) > 1:
                    mixed.append(str(func))
            return func(*args, **(kwargs or {}))

    y = torch.arange(4) % 10
    with Layouts():
        D(G(torch.randn(4, 8), y), y).sum().backward()
    assert mixed == []


def test_tutorial_discriminator():
    D = Discriminator("tutorial")
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(64, (5, 5), (2, 2)), (128, (5, 5), (2, 2))]
    assert [m.p for m in D.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0] == [0.3, 0.3]


def test_fast_preset_is_the_default_and_smaller():
    from ganimate.config import TrainConfig

    cfg = TrainConfig(num_classes=10, conditional=True, image_size=28, channels=1)
    assert (cfg.arch, cfg.g_width, cfg.d_width, cfg.lr_g) == ("fast", 192, 32, 6e-4)
    paper = TrainConfig(arch="paper", num_classes=10, conditional=True, image_size=28, channels=1)
    assert (paper.g_width, paper.d_width, paper.lr_g) == (256, 64, 2e-4)
    assert TrainConfig(arch="fast", g_width=64).g_width == 64  # an explicit width wins
    G, D = build_models(cfg)
    Gp, Dp = build_models(paper)
    convT = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.kernel_size, m.stride) for m in convT] == [((4, 4), (2, 2))] * 2
    assert count_params(G) + count_params(D) < count_params(Gp) + count_params(Dp)

    def flops(G, D):
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            D(G(torch.randn(2, 100), torch.arange(2)), torch.arange(2))
        return counter.get_total_flops()

    assert flops(G, D) < flops(Gp, Dp) / 3


@pytest.mark.parametrize("affine", [True, False])
def test_bn_affine_switch(affine):
    G, D = Generator(bn_affine=affine), Discriminator("paper", bn_affine=affine)
    for net in (G, D):
        norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert norms and all(m.affine == affine for m in norms)
        assert all((m.weight is not None) == affine for m in norms)


def test_soft_labels_equal_hard_labels_at_one_hot():
    torch.manual_seed(0)
    G = Generator(z_dim=8, num_classes=10, width=32).eval()
    z, y = torch.randn(4, 8), torch.tensor([1, 3, 5, 7])
    soft = torch.nn.functional.one_hot(y, 10).float()
    torch.testing.assert_close(G(z, y), G(z, soft))
    D = Discriminator("paper", num_classes=10).eval()
    torch.testing.assert_close(D(G(z, y), y), D(G(z, y), soft))


def test_conditional_models_need_labels():
    G = Generator(z_dim=8, num_classes=10, width=32)
    with pytest.raises(ValueError, match="conditional"):
        G(torch.randn(2, 8))


def test_unsupported_size():
    with pytest.raises(ValueError, match="multiple of 4"):
        upsampling_plan(30)


def test_build_models_from_config(tiny):
    cfg = tiny(image_size=32, channels=3, num_classes=10, conditional=True)
    G, D = build_models(cfg)
    assert (G.image_size, G.channels, G.num_classes, G.z_dim) == (32, 3, 10, 16)
    cfg = tiny(image_size=28, channels=1, num_classes=10, conditional=False)
    G, D = build_models(cfg)
    assert G.num_classes == 0 and D.embed is None


# ---------------------------------------------------------------- the architecture table


def cfg_of(arch: str, conditional: bool = True, **kw) -> SimpleNamespace:
    return SimpleNamespace(arch=arch, conditional=conditional, num_classes=10, z_dim=100, image_size=28, channels=1,
                           bn_affine=True, **{**arch_defaults(arch), **kw})


def test_archs_derive_from_the_table():
    assert ARCHS == tuple(ARCHITECTURES) == ("fast", "deep", "deeper", "deepest", "paper", "tutorial")
    assert arch_defaults("fast") == {"g_width": 192, "d_width": 32, "lr_g": 6e-4, "lr_d": 6e-4}
    deep = {**arch_defaults("fast"), "g_width": 128}
    assert arch_defaults("deep") == arch_defaults("deeper") == arch_defaults("deepest") == deep
    assert arch_defaults("paper") == arch_defaults("tutorial") == {"g_width": 256, "d_width": 64, "lr_g": 2e-4,
                                                                   "lr_d": 2e-4}
    for name, spec in ARCHITECTURES.items():
        G, D = build_models(cfg_of(name))
        assert type(G) is spec.generator and type(D) is spec.discriminator
    assert get_arch("tutorial").generator is get_arch("paper").generator


@pytest.mark.parametrize("call", [
    lambda: check_arch("bogus"),
    lambda: arch_defaults("bogus"),
    lambda: build_models(SimpleNamespace(**{**vars(cfg_of("fast")), "arch": "bogus"})),
    lambda: Generator(arch="bogus"),
    lambda: Discriminator("bogus"),
])
def test_unknown_arch_is_a_one_line_error_listing_the_known_ones(call):
    with pytest.raises(GanimateError) as e:
        call()
    assert str(e.value) == "unknown arch 'bogus': choose from fast, deep, deeper, deepest, paper, tutorial"


def test_unknown_arch_in_the_config(tiny):
    known = "fast, deep, deeper, deepest, paper, tutorial"
    with pytest.raises(GanimateError, match=f"^unknown arch 'Paper': choose from {known}$"):
        tiny(arch="Paper")


@pytest.fixture
def registered_arch():
    """A test-only architecture (the fast pair with other defaults), removed again afterwards."""
    spec = register_arch(ArchSpec("test-arch", FastGenerator, FastDiscriminator, g_width=24, d_width=8, lr_g=1e-3,
                                  lr_d=5e-4))
    yield spec
    del ARCHITECTURES[spec.name]


def test_registered_arch_is_accepted_everywhere(registered_arch, tiny):
    check_arch("test-arch")
    with pytest.raises(GanimateError, match="choose from fast, deep, deeper, deepest, paper, tutorial, test-arch$"):
        check_arch("nope")
    cfg = tiny(arch="test-arch", g_width=None, d_width=None, lr_g=None, lr_d=None, image_size=28, channels=1,
               num_classes=10, conditional=True)
    assert (cfg.g_width, cfg.d_width, cfg.lr_g, cfg.lr_d) == (24, 8, 1e-3, 5e-4)
    G, D = build_models(cfg)
    assert isinstance(G, FastGenerator) and isinstance(D, FastDiscriminator)
    assert G(torch.randn(2, cfg.z_dim), torch.arange(2)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="already registered"):
        register_arch(registered_arch)


# sha256 of the "key shape" lines of the state_dicts of the classes as they were before the table (commit
# fef8678), conditional, 28x28x1, default widths: checkpoints written then must still load.
STATE_KEYS = {
    "fast": ("e10b2484d0c43c7b", "a1f7062bb065ac43"),
    "paper": ("85b7ab7424e5a875", "600b1af1995e78c2"),
    "tutorial": ("85b7ab7424e5a875", "21a445a344d1038f"),
}


@pytest.mark.parametrize("arch", sorted(STATE_KEYS))
def test_state_dict_layout_is_unchanged(arch):
    def digest(net):
        lines = "\n".join(f"{k} {tuple(v.shape)}" for k, v in net.state_dict().items())
        return hashlib.sha256(lines.encode()).hexdigest()[:16]

    G, D = build_models(cfg_of(arch))
    assert (digest(G), digest(D)) == STATE_KEYS[arch], [*G.state_dict(), *D.state_dict()]


def test_init_is_seeded_and_covers_every_parameter():
    torch.manual_seed(0)
    G1, D1 = build_models(cfg_of("paper"))
    torch.manual_seed(0)
    G2, D2 = build_models(cfg_of("paper"))
    for a, b in ((G1, G2), (D1, D2)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), k
    biases = [p for n, p in D1.named_parameters() if n.endswith("bias") and "features" in n and p.ndim == 1]
    assert biases and not any(b.detach().any() for b in biases)


def test_minibatch_std_lets_d_see_a_batchs_variety():
    from ganimate.models.dcgan import FastDiscriminator

    torch.manual_seed(0)
    D = FastDiscriminator(28, 1, 0, 8, mbstd=4).eval()
    x = torch.randn(8, 1, 28, 28)
    alike = x[:1].expand(8, -1, -1, -1)
    with torch.no_grad():
        assert float(D.batch_spread(D.features(alike)).max()) < 1e-3 < float(D.batch_spread(D.features(x)).min())
        changed = x.clone()
        changed[2] = 0  # image 2 is in image 0's group (0, 2, 4, 6): image 0's logit moves
        assert D(x).shape == (8,) and not torch.allclose(D(x)[0], D(changed)[0])
        assert torch.allclose(D(x)[1], D(changed)[1])  # image 1's group (1, 3, 5, 7) is untouched


def test_hinge_loss():
    from ganimate import losses

    assert float(losses.d_loss(torch.tensor([2.0, 1.0]), torch.tensor([-3.0, -1.0]), "hinge")) == 0.0
    assert float(losses.d_loss(torch.tensor([0.0]), torch.tensor([0.0]), "hinge")) == 2.0
    assert float(losses.g_loss(torch.tensor([1.0, 3.0]), "hinge")) == -2.0


def test_r1_penalty_every_16th_d_step_on_the_reals_gradient():
    from ganimate.gan import R1_EVERY, GanState, d_update
    from ganimate.models.dcgan import FastDiscriminator, FastGenerator

    torch.manual_seed(0)
    G, D = FastGenerator(8, 28, 1, 0, 32), FastDiscriminator(28, 1, 0, 8)
    gan = GanState.create(G, D, lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.999), seed=0, ema=False, r1=10.0)
    x, fake = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    xr = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(xr).sum(), xr)
    stats = d_update(gan, (x, None), (fake, None))
    torch.testing.assert_close(stats["r1"], grad.square().flatten(1).sum(1).mean())
    assert all("r1" not in d_update(gan, (x, None), (fake, None)) for _ in range(R1_EVERY - 1))
    assert "r1" in d_update(gan, (x, None), (fake, None)) and gan.d_steps == R1_EVERY + 1


def test_mode_seeking_pairs_one_class_and_pushes_look_alikes_apart():
    from ganimate import losses
    from ganimate.gan import GanState
    from ganimate.models.dcgan import FastDiscriminator, FastGenerator
    from ganimate.train import paired_labels, train_step

    y = torch.tensor([3, 1, 4, 1, 5])
    assert paired_labels(y, 5).tolist() == [3, 1, 3, 1, 5] and paired_labels(None, 4) is None
    z = torch.randn(6, 8)
    alike, varied = torch.zeros(6, 1, 4, 4), torch.randn(6, 1, 4, 4)
    assert float(losses.mode_seeking(alike, z)) > 1e4 > 10 > float(losses.mode_seeking(varied, z))
    images, latents = (varied[:3] - varied[3:]).abs().mean(), (z[:3] - z[3:]).abs().mean()
    torch.testing.assert_close(losses.mode_seeking(varied, z), 1 / (images / latents + 1e-5))

    torch.manual_seed(0)
    G, D = FastGenerator(8, 28, 1, 10, 32), FastDiscriminator(28, 1, 10, 8)
    seen = []
    D.register_forward_hook(lambda m, args, out: seen.append(args[1].clone()))
    gan = GanState.create(G, D, lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.999), seed=0, ema=False)
    x, y = torch.randn(6, 1, 28, 28), torch.arange(6)
    stats = train_step(gan, x, y, torch.randn(6, 8), mode_seeking=1.0)
    assert float(stats["mode_seeking"]) > 0 and seen[0].tolist() == list(range(6))  # D's reals keep their labels
    assert seen[1].tolist() == seen[2].tolist() == [0, 1, 2, 0, 1, 2]  # the fakes: pairs (i, i + 3) of one class
    assert "mode_seeking" not in train_step(gan, x, y, torch.randn(6, 8))


def test_g_step_computes_no_d_weight_gradients_and_trains_as_a_full_backward_does(monkeypatch):
    """G's loss flows back through D; only G's weights get gradients (D's, which D's next step would drop, are not
    computed), and the weights after a few steps are bit for bit those of a plain loss.backward()."""
    import ganimate.gan as gan_mod
    from ganimate.gan import GanState
    from ganimate.models.dcgan import PaperGenerator, TutorialDiscriminator
    from ganimate.train import train_step

    pruning = gan_mod.g_update

    def plain(opt, loss, scaler=None, world=None):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return True

    def trained(update):
        monkeypatch.setattr(gan_mod, "g_update", update)
        torch.manual_seed(0)
        G, D = PaperGenerator(8, 28, 1, 10, 32), TutorialDiscriminator(28, 1, 10, 8)
        gan = GanState.create(G, D, lr_g=1e-3, lr_d=1e-3, betas=(0.5, 0.999), seed=0, ema=False)
        x, y = torch.randn(6, 1, 28, 28), torch.arange(6)
        for _ in range(3):
            train_step(gan, x, y, torch.randn(6, 8))
        return gan

    full, pruned = trained(plain), trained(pruning)
    for a, b in zip([*full.G.parameters(), *full.D.parameters()], [*pruned.G.parameters(), *pruned.D.parameters()],
                    strict=True):
        assert torch.equal(a, b)
    d_grads = [p.grad.clone() for p in pruned.D.parameters()]  # left by D's own step
    loss = pruned.D(pruned.G(torch.randn(6, 8), torch.arange(6)), torch.arange(6)).mean()
    pruning(pruned.opt_G, loss)
    assert all(p.grad is not None for p in pruned.G.parameters())
    assert all(torch.equal(p.grad, g) for p, g in zip(pruned.D.parameters(), d_grads, strict=True))


def test_dropout_keeps_the_asked_share_scaled_and_is_identity_in_eval():
    from ganimate.models.dcgan import Dropout

    d = Dropout(0.3)
    x = torch.ones(400_000, requires_grad=True)
    torch.manual_seed(0)
    y = d(x)
    kept = y != 0
    assert abs(float(kept.float().mean()) - 0.7) < 0.003  # 400k draws: the standard error is 0.0007
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7), rtol=1e-4, atol=0)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient passes where the mask kept, scaled alike
    torch.manual_seed(0)
    assert torch.equal(d(x), y)  # the global seed decides the mask, as for nn.Dropout
    halves = kept.view(2, -1).float()
    assert abs(float(torch.corrcoef(torch.stack([halves[0][:-1], halves[0][1:]]))[0, 1])) < 0.01  # neighbours
    d.eval()
    assert torch.equal(d(x), x)
    assert float(Dropout(0.0).train()(x).detach().sum()) == 400_000
    assert float(Dropout(1e-6).train()(x).detach().sum()) == 400_000  # the keep probability rounds to 1
    assert float(Dropout(1 - 1e-6).train()(x).detach().sum()) == 0  # ... and to 0
    cl = torch.ones(50, 32, 16, 16).to(memory_format=torch.channels_last)  # a channels-last x: its mask lies as x
    y = Dropout(0.3).train()(cl)
    assert y.is_contiguous(memory_format=torch.channels_last) and abs(float((y != 0).float().mean()) - 0.7) < 0.003
    assert y.unique().tolist() == [0.0, torch.tensor(65536 / round(0.7 * 65536)).item()]  # the scale in float32


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size,channels,num_classes,bn_affine",
                         [(28, 1, 10, False), (32, 3, 0, True), (64, 1, 0, True)])
def test_folded_generator_computes_what_g_computes_in_eval_mode(arch, size, channels, num_classes, bn_affine):
    """Sampling's folded copy (batch norm in the layers before it, channels-last rows, LeakyReLU in place) gives
    G's eval-mode images to float rounding, whatever the running statistics and affine parameters."""
    import torch.nn as nn

    from ganimate.models.folded import FoldedGenerator, GemmConvTranspose2d, foldable
    from ganimate.sample import inference_copy

    torch.manual_seed(0)
    G = get_arch(arch).generator(z_dim=8, image_size=size, channels=channels, num_classes=num_classes, width=32,
                                 bn_affine=bn_affine)
    for bn in (m for m in G.modules() if isinstance(m, nn.BatchNorm2d)):  # statistics unlike a fresh layer's
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.2, 3.0)
        if bn.affine:
            bn.weight.data.normal_(1, 0.3)
            bn.bias.data.normal_(0, 0.3)
    z, y = torch.randn(6, 8), (torch.arange(6) % 10 if num_classes else None)
    with torch.no_grad():
        want = G.eval()(z, y)
    assert foldable(G)
    rng = torch.get_rng_state()
    folded = inference_copy(G)
    assert torch.equal(rng, torch.get_rng_state())  # training's --eval-every samples through it mid-run
    assert isinstance(folded, FoldedGenerator) and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert isinstance(folded.net[-2], GemmConvTranspose2d)  # the last layer, a few output channels: matmul + fold
    with torch.inference_mode():
        got = folded(z, y)
    assert got.shape == want.shape and torch.allclose(got, want, atol=2e-5, rtol=0)
    assert not torch.equal(G.eval()(z, y), G.train()(z, y))  # the statistics matter: eval is not train mode


def test_a_generator_with_its_own_forward_is_copied_not_folded():
    from ganimate.models.folded import FoldedGenerator, foldable
    from ganimate.sample import inference_copy

    class Other(FastGenerator):
        def forward(self, z, y=None):
            return super().forward(z, y) * 0.5

    G = Other(z_dim=8, image_size=28, channels=1, width=32)
    assert not foldable(G) and type(inference_copy(G)) is Other
    with pytest.raises(ValueError, match="cannot be folded"):
        FoldedGenerator(G)


def test_class_norm_starts_as_the_plain_generator_and_then_modulates_per_class():
    """`--class-norm`: a modulation per class after each of G's batch norms, zero at the start, so the new G computes
    what the same weights compute without it; once learned, one class's rows move and another's do not."""
    torch.manual_seed(0)
    plain = FastGenerator(z_dim=8, image_size=28, channels=1, num_classes=10, width=32)
    G = FastGenerator(z_dim=8, image_size=28, channels=1, num_classes=10, width=32, class_norm=True)
    assert len(G.class_norms) == 2  # after fc_norm and after the one batch norm of the stack
    missing, unexpected = G.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing == ["class_norms.0.weight", "class_norms.1.weight"]
    z, y = torch.randn(6, 8), torch.tensor([0, 1, 2, 3, 4, 5])
    assert torch.equal(G(z, y), plain(z, y))
    with torch.no_grad():
        G.class_norms[1].weight[3].normal_(0, 1)  # class 3 only
    moved = (G(z, y) - plain(z, y)).abs().flatten(1).amax(1)
    assert moved[3] > 1e-3 and moved[[0, 1, 2, 4, 5]].max() < 1e-6
    blend = torch.zeros(1, 10)
    blend[0, 3] = blend[0, 4] = 0.5  # class morphs feed blends of one-hot rows
    assert G(z[:1], blend).shape == (1, 1, 28, 28)
    unconditional = FastGenerator(z_dim=8, image_size=28, channels=1, num_classes=0, width=32, class_norm=True)
    assert unconditional.class_norms is None


@pytest.mark.parametrize("arch", ARCHS)
def test_folded_generator_keeps_the_class_norms(arch):
    from ganimate.models.folded import FoldedGenerator
    from ganimate.sample import inference_copy

    torch.manual_seed(0)
    G = get_arch(arch).generator(z_dim=8, image_size=28, channels=1, num_classes=10, width=32, class_norm=True)
    for m in G.class_norms:
        m.weight.data.normal_(0, 0.5)
    for bn in (m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.2, 3.0)
    z, y = torch.randn(6, 8), torch.arange(6)
    with torch.no_grad():
        want = G.eval()(z, y)
    folded = inference_copy(G)
    assert isinstance(folded, FoldedGenerator)
    with torch.inference_mode():
        assert torch.allclose(folded(z, y), want, atol=2e-5, rtol=0)


def test_class_norms_survive_the_distributed_batch_norm_swap():
    """Under torchrun G's batch norms become `distributed.SyncBatchNorm` (not a BatchNorm2d): G must still modulate
    after each of them, and still fold for sampling."""
    from ganimate.distributed import sync_batchnorm
    from ganimate.models.folded import foldable

    torch.manual_seed(0)
    G = FastGenerator(z_dim=8, image_size=28, channels=1, num_classes=10, width=32, class_norm=True)
    for m in G.class_norms:
        m.weight.data.normal_(0, 0.5)
    z, y = torch.randn(6, 8), torch.arange(6)
    with torch.no_grad():
        want = G.train()(z, y)
        synced = sync_batchnorm(G)
        assert torch.allclose(synced.train()(z, y), want, atol=1e-5, rtol=0)
    assert foldable(synced)
