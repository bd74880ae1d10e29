"""Grad-CAM and guided backprop on constructed discriminators whose answers are known, and
guided backprop against Captum's as an oracle on a ReLU network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genlab.interpret.saliency import GuidedActivation, grad_cam, guided_backprop, guided_grad_cam, guided_model


class HalfD(nn.Module):
    """A discriminator that sees only one half of its 32x32 input (the rest is multiplied by
    0 before the first conv); convs without bias, so activations are exactly 0 wherever the
    receptive field lies in the hidden half."""

    def __init__(self, keep: str, channels: int = 1):
        super().__init__()
        mask = torch.zeros(1, 1, 32, 32)
        if keep == "left":
            mask[..., :16] = 1
        else:  # top
            mask[..., :16, :] = 1
        self.register_buffer("mask", mask)
        self.main = nn.Sequential(
            nn.Conv2d(channels, 8, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),   # (B, C, 32, 32) -> (B, 8, 16, 16)
            nn.Conv2d(8, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.LeakyReLU(0.2, True),  # -> (B, 16, 8, 8)
        )
        self.head = nn.Linear(16 * 8 * 8, 1)
        torch.manual_seed(0)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0, 0.2)
        # BatchNorm with zero shift keeps exact zeros exact
        self.eval()

    def forward(self, x):
        return self.head(self.main(x * self.mask).flatten(1)).squeeze(1)


@pytest.mark.parametrize("keep", ["left", "top"])
def test_grad_cam_puts_no_heat_where_d_cannot_look(keep):
    d = HalfD(keep)
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    heats = {t: grad_cam(d, x, t) for t in ("real", "fake")}
    for t, heat in heats.items():
        assert heat.shape == (6, 1, 32, 32) and heat.min() >= 0
        # the last conv's 8x8 map: columns/rows 5..7 see only hidden pixels (receptive field
        # of conv2 cell j spans input px 4j-6..4j+5); bilinear upsampling keeps them 0 from px 22 on
        hidden = heat[..., 22:] if keep == "left" else heat[..., 22:, :]
        assert hidden.abs().max() == 0, t
    # something is lit on the visible side for at least one target
    seen = sum(h[..., :16].sum() if keep == "left" else h[..., :16, :].sum() for h in heats.values())
    assert seen > 0


def test_grad_cam_fake_is_real_of_the_negated_logit():
    d = HalfD("left")
    neg = HalfD("left")
    neg.load_state_dict(d.state_dict())
    with torch.no_grad():
        neg.head.weight.neg_()
        neg.head.bias.neg_()
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(grad_cam(d, x, "fake"), grad_cam(neg, x, "real"))


def test_grad_cam_leaves_the_model_unchanged():
    d = HalfD("left")
    before = {k: v.clone() for k, v in d.state_dict().items()}
    grad_cam(d, torch.rand(2, 1, 32, 32), "real")
    guided_backprop(d, torch.rand(2, 1, 32, 32), "real")
    assert all(torch.equal(before[k], v) for k, v in d.state_dict().items())
    assert any(isinstance(m, nn.LeakyReLU) and m.inplace for m in d.modules())


def _relu_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, 1, 1), nn.ReLU(),        # (B, 3, 12, 12) -> (B, 6, 12, 12)
        nn.Conv2d(6, 8, 3, 2, 1), nn.ReLU(),        # -> (B, 8, 6, 6)
        nn.Flatten(), nn.Linear(8 * 36, 16), nn.ReLU(), nn.Linear(16, 1), nn.Flatten(0),  # -> (B,)
    ).eval()


def test_guided_backprop_equals_captum_on_a_relu_network():
    from captum.attr import GuidedBackprop

    net = _relu_net()
    x = torch.randn(5, 3, 12, 12)
    ours = guided_backprop(net, x, "real")
    oracle = GuidedBackprop(net).attribute(x.clone().requires_grad_(True), target=None)
    torch.testing.assert_close(ours, oracle.detach(), rtol=1e-5, atol=1e-7)
    # and it is not the plain gradient (the guidance changed something)
    xg = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(net(xg).sum(), xg)
    assert not torch.allclose(ours, plain)


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_guided_gradients_respect_the_masks(slope):
    """At every activation, the gradient passed down is >= 0; for ReLU it is 0 wherever the
    forward input was <= 0, for LeakyReLU it is `slope` x the positive upstream gradient there."""
    net = _relu_net()
    if slope:
        for i, m in enumerate(net):
            if isinstance(m, nn.ReLU):
                net[i] = nn.LeakyReLU(slope)
    g = guided_model(net)
    seen = []

    def keep(module, inputs, output):
        inputs[0].retain_grad()
        output.retain_grad()
        seen.append((inputs[0], output))

    for m in g.modules():
        if isinstance(m, GuidedActivation):
            m.register_forward_hook(keep)
    x = torch.randn(4, 3, 12, 12, requires_grad=True)
    g(x).sum().backward()
    assert len(seen) == 3
    for inp, out in seen:
        gin, gout = inp.grad, out.grad
        assert (gin >= 0).all()
        pos = inp > 0
        torch.testing.assert_close(gin[pos], gout[pos].clamp(min=0))
        torch.testing.assert_close(gin[~pos], slope * gout[~pos].clamp(min=0))


def test_guided_grad_cam_is_zero_where_grad_cam_is():
    d = HalfD("left")
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    ggc = guided_grad_cam(d, x, "real")
    assert ggc.shape == x.shape
    assert ggc[..., 22:].abs().max() == 0
    assert np.isfinite(ggc.numpy()).all()


def test_saliency_on_rgb_and_figure(tmp_path):
    from genlab.interpret.saliency import saliency_figure, saliency_maps

    d = HalfD("left", channels=3)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    maps = saliency_maps(d, x)
    assert list(maps) == ["Grad-CAM real", "guided BP real", "guided Grad-CAM real",
                          "Grad-CAM fake", "guided BP fake", "guided Grad-CAM fake"]
    assert maps["guided BP real"].shape == (3, 3, 32, 32) and maps["Grad-CAM fake"].shape == (3, 1, 32, 32)
    path = saliency_figure(((x + 1) / 2).numpy(), np.array([0.1, 0.5, 0.9]), maps, tmp_path / "s.png", "test")
    assert path.stat().st_size > 1000


def test_a_class_conditional_d_is_explained_for_the_label_given():
    """A projection D's score depends on the label: the maps take it, and another label gives
    other maps."""
    from genlab.interpret.saliency import saliency_maps
    from genlab.models import gan

    _, d = gan.build(gan.Config(num_classes=10, d_width=8))
    torch.manual_seed(0)
    with torch.no_grad():
        d.embed.weight.normal_(0, 1.0)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    a = saliency_maps(d.eval(), x, torch.tensor([3, 3]))
    b = saliency_maps(d, x, torch.tensor([5, 5]))
    assert all(np.isfinite(m).all() for m in a.values())
    assert not np.allclose(a["guided BP real"], b["guided BP real"])


def test_grad_cam_skips_a_last_conv_with_a_1x1_map():
    # a D whose last conv leaves a 1x1 map (the 28 px D of before, with a 4x4 conv where the
    # default now has its fully connected twin): Grad-CAM on the 1x1 map would paint every pixel
    # alike, so it explains the 3x3 one
    from genlab.interpret.discriminator import conv_layers, last_spatial_conv
    from genlab.models import gan

    torch.manual_seed(0)
    _, d = gan.build(gan.Config(d_width=8, d_layers=4))
    layers = list(d.features)
    k = next(i for i, m in enumerate(layers) if isinstance(m, nn.Flatten))
    assert isinstance(layers[k + 1], nn.Linear) and isinstance(layers[k + 2], nn.BatchNorm1d)
    layers[k:k + 3] = [nn.Conv2d(32, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64)]
    d.features = nn.Sequential(*layers)
    d.eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    convs = conv_layers(d)
    assert len(convs) == 4 and last_spatial_conv(d, x) is convs[2]
    heat = grad_cam(d, x, "real")
    on_last = grad_cam(d, x, "real", layer=convs[3])
    # the 1x1 map: one value per image (std is float round-off of it); the 3x3 one varies
    assert all(float(on_last[i].std()) <= 1e-5 * float(on_last[i].max()) for i in range(3))
    assert all(float(heat[i].std()) > 0.1 * float(heat[i].max()) > 0 for i in range(3))
    # the default D: its last conv is the 3x3 one already
    _, d0 = gan.build(gan.Config(d_width=8, d_layers=4))
    assert last_spatial_conv(d0.eval(), x) is conv_layers(d0)[-1] and len(conv_layers(d0)) == 3


# ----------------------------------------------------------------------------- dcgan64 on RGB photos

def _photo_batch(n: int) -> np.ndarray:
    """`n` 64 px RGB crops of scikit-image's sample photographs, uint8 (n, 3, 64, 64)."""
    pytest.importorskip("skimage")
    from genlab.data.photo_folder import photo_crops

    return photo_crops(n, size=64, seed=0).transpose(0, 3, 1, 2).copy()  # (n, 64, 64, 3) -> (n, 3, 64, 64)


def _dcgan64(seed: int = 0):
    from genlab.models import gan

    torch.manual_seed(seed)
    g, d = gan.build(gan.Config(arch="dcgan64", channels=3, image_size=64, z_dim=8, ngf=8, ndf=8))
    return g.eval(), d.eval()


def test_saliency_of_a_dcgan64_discriminator_on_rgb_photos(tmp_path):
    from PIL import Image

    from genlab.interpret.saliency import saliency_figure, saliency_maps, saliency_tiles

    _, d = _dcgan64()
    photos = _photo_batch(2)
    assert not np.array_equal(photos[0], photos[1])
    x = torch.from_numpy(photos).float() / 127.5 - 1
    heat = grad_cam(d, x, "real")
    assert heat.shape == (2, 1, 64, 64)  # the image's own size, from D's last 4x4 map
    for i in range(2):
        assert float(heat[i].std()) > 0.05 * float(heat[i].max()) > 0  # not constant
    assert not torch.allclose(heat[0] / heat[0].max(), heat[1] / heat[1].max(), atol=0.05)  # image-dependent
    gb = guided_backprop(d, x, "real")
    assert gb.shape == (2, 3, 64, 64) and all(float(gb[i].std()) > 0 for i in range(2))
    assert not torch.allclose(gb[:, 0], gb[:, 1])  # one gradient per colour channel, not grey repeated
    assert not torch.allclose(gb[0], gb[1])
    maps = saliency_maps(d, x)
    assert {k: v.shape[1:] for k, v in maps.items()} == {
        **{f"Grad-CAM {t}": (1, 64, 64) for t in ("real", "fake")},
        **{f"{k} {t}": (3, 64, 64) for k in ("guided BP", "guided Grad-CAM") for t in ("real", "fake")}}
    # the figure's cells: the photo in colour, Grad-CAM's heat over the colour photo, colour gradients
    from matplotlib import colormaps

    tiles = saliency_tiles(photos / 255.0, maps, pad=2)
    assert tiles.shape == (2 * 66 + 2, 7 * 66 + 2, 3)
    cell = lambda r, c: tiles[2 + 66 * r: 66 * (r + 1), 2 + 66 * c: 66 * (c + 1)]  # noqa: E731
    photo = photos[1].transpose(1, 2, 0) / 255.0  # (64, 64, 3)
    np.testing.assert_allclose(cell(1, 0), photo, atol=1e-6)
    jet = colormaps["jet"](maps["Grad-CAM real"][1, 0] / maps["Grad-CAM real"][1, 0].max())[..., :3]
    np.testing.assert_allclose(cell(1, 1), 0.5 * photo + 0.5 * jet, atol=1e-6)
    gb_cell = cell(1, 2)
    assert np.abs(gb_cell[..., 0] - gb_cell[..., 1]).mean() > 0.01  # not a grey gradient
    path = saliency_figure(photos / 255.0, np.array([0.5, 0.4]), maps, tmp_path / "saliency.png", "dcgan64 RGB")
    fig = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert fig.shape[1] >= 7 * 64  # seven columns, no cell drawn below the image's size
    chroma = fig.max(axis=2) - fig.min(axis=2)
    assert (chroma > 40).mean() > 0.15  # a colour figure: the photos, jet heat and colour gradients


def test_saliency_section_on_an_unlabelled_rgb_set(tmp_path):
    """The interpret stage's saliency part on 64 px RGB photos whose labels are all zero (as an
    unlabelled folder stores them): both figures and D's P(real), with no label used."""
    from genlab.interpret.analysis import InterpretParams, saliency_section

    g, d = _dcgan64()
    photos = _photo_batch(8)
    metrics = saliency_section(d, g, photos, np.zeros(8, np.int64), InterpretParams(n_images=3, heat_images=8),
                               seed=0, device=torch.device("cpu"), out_dir=tmp_path)
    assert 0 <= metrics["p_real_real"] <= 1 and 0 <= metrics["p_real_generated"] <= 1
    assert 0 <= metrics["gradcam_real_heat_on_strokes"] <= 1
    for name in ("saliency_real.png", "saliency_generated.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
