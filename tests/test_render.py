"""Traversals, grids, GIFs, sampling and the run report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genlab.generate import balanced_labels, generate_samples
from genlab.render.figures import RenderParams, render_traversal
from genlab.grids import make_grid, save_gif, save_grid, save_mp4
from genlab.render.report import build_report, markdown_to_html
from genlab.render.traversal import lerp, path_labels, slerp, traversal_path


class ToyDecoder(torch.nn.Module):
    """A real (tiny) generator following the decode contract: z -> (B, 1, 8, 8) in [0, 1]."""

    def __init__(self, z_dim: int = 4, num_classes: int | None = None):
        super().__init__()
        self.z_dim, self.num_classes, self.image_shape = z_dim, num_classes, (1, 8, 8)
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(z_dim + (num_classes or 0), 64)

    def decode(self, z, labels=None):
        if self.num_classes:
            z = torch.cat([z, torch.nn.functional.one_hot(labels, self.num_classes).float()], 1)
        return torch.sigmoid(self.fc(z)).view(-1, 1, 8, 8)  # (B, 64) -> (B, 1, 8, 8)

    def encode(self, x, labels=None):
        flat = x.flatten(1)[:, : self.z_dim]
        return flat, torch.zeros_like(flat)


@pytest.mark.parametrize("mode", ["linear", "slerp"])
def test_traversal_count_and_exact_endpoints(mode):
    points = torch.randn(10, 16, generator=torch.Generator().manual_seed(0))
    path = traversal_path(points, steps=100, mode=mode)
    assert path.shape == (10 + 9 * 100, 16)
    for i in range(10):
        assert torch.equal(path[i * 101], points[i])  # every chosen point, exactly
    # interpolated latents lie strictly between their endpoints
    assert not any(torch.equal(path[1], p) for p in points)


def test_lerp_is_linear_and_monotone():
    a, b = torch.zeros(3), torch.ones(3)
    out = lerp(a, b, torch.tensor([0.25, 0.5]))
    assert torch.allclose(out, torch.tensor([[0.25] * 3, [0.5] * 3]))


def test_slerp_keeps_norms_and_differs_from_lerp():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(32, generator=g), torch.randn(32, generator=g)
    b = b / b.norm() * a.norm()
    t = torch.linspace(0, 1, 11)
    s = slerp(a, b, t)
    assert torch.allclose(s.norm(dim=1), a.norm().expand(11), rtol=1e-5)
    assert torch.allclose(s[0], a, atol=1e-6) and torch.allclose(s[-1], b, atol=1e-6)
    assert (lerp(a, b, t)[5].norm() < a.norm() * 0.95)  # lerp cuts inside the sphere
    # parallel vectors fall back to lerp without NaNs
    assert torch.isfinite(slerp(a, 2 * a, t)).all()


def test_traversal_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 points"):
        traversal_path(torch.zeros(1, 3), 5)


def test_path_labels_follow_segments():
    labels = path_labels(torch.tensor([3, 7, 1]), steps=2)
    assert labels.tolist() == [3, 3, 3, 7, 7, 7, 1]


def test_generate_samples_seeded_and_balanced():
    model = ToyDecoder(num_classes=10)
    a, la = generate_samples(model, 25, seed=3, batch_size=7)
    b, _ = generate_samples(model, 25, seed=3, batch_size=25)
    c, _ = generate_samples(model, 25, seed=4)
    assert a.dtype == np.uint8 and a.shape == (25, 1, 8, 8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)  # batching does not change samples
    assert np.bincount(la, minlength=10).tolist() == [3] * 5 + [2] * 5
    assert balanced_labels(4, 3).tolist() == [0, 1, 2, 0]


def test_grid_layout_and_files(tmp_path):
    images = np.stack([np.full((1, 4, 4), i * 20, np.uint8) for i in range(5)])
    grid = make_grid(images, ncols=2, pad=1)
    assert grid.shape == (3 * 5 + 1, 2 * 5 + 1, 1)
    assert grid[1, 1, 0] == 0 and grid[1, 6, 0] == 20 and grid[11, 1, 0] == 80
    save_grid(images, tmp_path / "g.png", ncols=2, scale=3, pad=1)
    assert Image.open(tmp_path / "g.png").size == (33, 48)
    save_gif(images, tmp_path / "a.gif", fps=10, scale=2)
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 5 and gif.size == (8, 8)


@pytest.mark.parametrize("channels", [1, 3])
def test_mp4_decodes_to_its_frames(tmp_path, channels):
    """save_mp4 round trip through the ffmpeg imageio-ffmpeg ships: frame count, the size
    (scaled, odd sizes padded to even), and each decoded frame close to its own source frame
    and far from the others (H.264 is lossy, so "close" is a mean error of a few levels)."""
    import imageio_ffmpeg

    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (6, channels, 5, 7), dtype=np.uint8)  # 6 frames of 5 x 7 blocks
    frames = blocks.repeat(4, axis=2).repeat(4, axis=3)  # (6, C, 20, 28): flat 4 x 4 blocks survive 4:2:0 chroma
    frames = frames[:, :, :19, :27]  # odd sizes: padded to even after scaling by 1
    save_mp4(frames, tmp_path / "a.mp4", fps=5, scale=1)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "a.mp4"))
    meta = next(reader)
    assert meta["size"] == (28, 20) and meta["fps"] == 5
    decoded = np.stack([np.frombuffer(f, np.uint8).reshape(20, 28, 3) for f in reader]).astype(np.int16)
    assert decoded.shape[0] == 6
    source = np.repeat(frames.transpose(0, 2, 3, 1), 3 // channels, axis=-1).astype(np.int16)  # (T, 19, 27, 3)
    err = np.abs(decoded[:, None, :19, :27] - source[None]).mean(axis=(2, 3, 4))  # (T decoded, T source)
    own = np.diag(err)
    assert (own < 12).all(), own
    assert (err + np.eye(6) * 1e3 > 40).all(), err  # every frame far from every other frame's source
    assert decoded[:, 19:].mean() < 40 and decoded[:, :, 27:].mean() < 40  # black padding (4:2:0 chroma bleeds in)


def test_render_traversal_writes_grid_and_gif(tmp_path):
    model = ToyDecoder()
    cfg = RenderParams(points=3, steps=4, interpolation="slerp")
    real = np.random.default_rng(0).integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    stats = render_traversal("vae", model, cfg, seed=0, device="cpu", out_dir=tmp_path, real=real,
                             real_labels=np.zeros(20, np.int64))
    assert stats["render/vae/traversal_images"] == 3 + 2 * 4
    assert Image.open(tmp_path / "vae_traversal.gif").n_frames == 11
    # one row per segment: 5 columns of (8 px + 1 pad)
    grid = np.asarray(Image.open(tmp_path / "vae_traversal.png"))
    assert grid.shape == (3 * 9 + 1, 5 * 9 + 1)
    # the points the VAE walks through are encoded test images: each row starts at one (the
    # last row is the last point), and each equals the decoded encoding of a distinct real image
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(real).float() / 255.0)
        decoded = (model.decode(mu).clamp(0, 1) * 255).round().to(torch.uint8).numpy()[:, 0]
    chosen = []
    for row in range(3):
        cell = grid[1 + row * 9 : 9 + row * 9, 1:9]
        matches = [j for j in range(len(real)) if np.array_equal(decoded[j], cell)]
        assert matches, f"traversal point {row} is not a decoded test image"
        chosen.append(matches[0])
    assert len(set(chosen)) == 3
    # frames of the GIF are the same images, in path order: first and last are the end points
    gif = Image.open(tmp_path / "vae_traversal.gif")
    gif.seek(0)
    first = np.asarray(gif.convert("L"))[::4, ::4]
    assert np.array_equal(first, decoded[chosen[0]])


class ToyVAE(ToyDecoder):
    """A 2-D latent space (for the manifold and the scatter); encode: the mean of each image half."""

    conditional = False

    def __init__(self):
        super().__init__(z_dim=2)

    def encode(self, x, labels=None):
        flat = x.flatten(1)
        mu = torch.stack([flat[:, :32].mean(1), flat[:, 32:].mean(1)], 1) * 4 - 2
        return mu, torch.zeros_like(mu)


def test_manifold_png_is_the_decoded_prior_quantile_grid(tmp_path):
    from genlab.render.vae_figures import plot_manifold

    model = ToyVAE()
    steps = 4
    plot_manifold(model, tmp_path / "m.png", steps=steps, scale=2)
    png = np.asarray(Image.open(tmp_path / "m.png"))[::2, ::2]  # undo the x2 nearest-neighbour upscale
    assert png.shape == (steps * 9 + 1, steps * 9 + 1)
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, steps, dtype=torch.float64)).float()
    for r in range(steps):
        for c in range(steps):
            z = torch.stack([q[c], q[steps - 1 - r]])[None]  # z[0] grows rightwards, z[1] upwards
            with torch.no_grad():
                want = (model.decode(z).clamp(0, 1) * 255).round().to(torch.uint8).numpy()[0, 0]
            assert np.array_equal(png[1 + r * 9 : 9 + r * 9, 1 + c * 9 : 9 + c * 9], want), (r, c)
    assert (png[0] == 255).all() and (png[:, 0] == 255).all()  # padding


def test_latent_scatter_plots_the_encoded_test_images(tmp_path):
    from genlab.render import vae_figures
    from genlab.runtime import save_figure

    model = ToyVAE()
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (30, 1, 8, 8), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, 30))
    mu = vae_figures.encoded_means(model, x, y, max_points=25)
    with torch.no_grad():
        want, _ = model.encode(x[:25].float() / 255.0)
    np.testing.assert_allclose(mu, want.numpy(), rtol=1e-6)
    fig = vae_figures.latent_scatter_figure(mu, y[:25].numpy())
    points = fig.axes[0].collections[0]
    np.testing.assert_allclose(points.get_offsets(), mu, rtol=1e-6)
    assert points.get_array().tolist() == y[:25].tolist()
    # the PNG the stage writes is exactly that figure
    vae_figures.plot_latent_scatter(model, x, y, tmp_path / "a.png", max_points=25)
    save_figure(fig, tmp_path / "b.png", dpi=120)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    vae_figures.plot_latent_scatter(model, x, y, tmp_path / "c.png", max_points=20)
    assert (tmp_path / "c.png").read_bytes() != (tmp_path / "b.png").read_bytes()


def test_manifold_needs_a_2d_latent_space(tmp_path):
    from genlab.render.vae_figures import plot_manifold

    model = ToyDecoder(z_dim=4)
    model.conditional = False
    with pytest.raises(ValueError, match="z_dim 4"):
        plot_manifold(model, tmp_path / "m.png")


def test_report_lists_figures_texts_and_metrics(tmp_path):
    reports, metrics = tmp_path / "reports", tmp_path / "metrics"
    (reports / "gan").mkdir(parents=True)
    (reports / "char_rnn").mkdir()
    metrics.mkdir()
    save_grid(np.zeros((4, 1, 4, 4), np.uint8), reports / "gan" / "epoch_001.png")
    (reports / "gan" / "progress.mp4").write_bytes(b"")  # linked, not embedded
    (reports / "char_rnn" / "generated.txt").write_text("ROMEO: hello")
    (metrics / "evaluate.json").write_text(json.dumps({"gan": {"fid": 1.5, "kl_uniform": 0.01}, "real": {"fid": 0.1, "kl_uniform": 0.0}}))
    (metrics / "gan.json").write_text(json.dumps({"gan/g_loss": 0.7}))
    md = build_report(reports, metrics)
    assert "![epoch_001](gan/epoch_001.png)" in md
    assert "ROMEO: hello" in md
    assert "| gan | 1.5 | 0.01 |" in md and "| real | 0.1 | 0 |" in md
    assert "| gan | `gan/g_loss` | 0.7 |" in md
    page = markdown_to_html(md)
    assert '<img src="gan/epoch_001.png"' in page and "<table>" in page and "<pre>" in page
    assert '<a href="gan/progress.mp4">progress.mp4</a>' in page
