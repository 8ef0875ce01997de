import pytest
import torch

from ganimate.models import ARCHS, Discriminator, Generator, build_models, count_params
from ganimate.models.dcgan import upsampling_plan


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes(arch, size, channels, num_classes):
    G = Generator(z_dim=8, image_size=size, channels=channels, num_classes=num_classes, width=32, arch=arch)
    D = Discriminator(arch, size, channels, num_classes, width=8)
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
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in D.modules()) == 3
    assert [m.p for m in D.modules() if isinstance(m, torch.nn.Dropout)] == [0.4]
    assert D.fc.out_features == 1


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

    assert flops(G, D) < flops(Gp, Dp) / 4


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
