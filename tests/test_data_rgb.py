"""The offline colour source (synthetic-rgb) and the local LSUN source (lsun:<dir>)."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from genlab.data.download import SourceUnavailable
from genlab.data.images import ImageSourceError, PrepareImagesParams, load_source, prepare_images
from genlab.data.synthetic_rgb import LUMA, _colour_with_luma, synthetic_rgb


@pytest.fixture(scope="module")
def rgb():
    return synthetic_rgb(300, 100, seed=0, size=32)


def test_rgb_shapes_balanced_and_deterministic(rgb):
    x, y = rgb["train"]
    assert x.shape == (300, 3, 32, 32) and x.dtype == np.uint8
    assert np.bincount(y, minlength=10).tolist() == [30] * 10
    again = synthetic_rgb(300, 100, seed=0, size=32)
    assert np.array_equal(again["train"][0], x) and np.array_equal(again["test"][0], rgb["test"][0])
    other = synthetic_rgb(300, 100, seed=1, size=32)
    assert not np.array_equal(other["train"][0], x)


def test_rgb_is_colour_and_backgrounds_vary(rgb):
    x = rgb["train"][0].astype(np.float32)
    # real colour: channels differ (grey images would give 0)
    assert np.abs(x[:, 0] - x[:, 1]).mean() > 20
    # backgrounds differ between images: the corner pixels' colours spread widely
    corners = x[:, :, :3, :3].mean((2, 3))  # (N, 3)
    assert corners.std(0).min() > 40


def test_digit_contrasts_with_its_background():
    """The digit's colour has a luma 0.3-0.6 away from the background's mean luma: measured
    on the pixels the glyph covers vs those it does not, every image keeps a clear contrast."""
    import torch

    from genlab.data.synthetic_digits import render_digits
    from genlab.data.synthetic_rgb import _draw_params, _place, compose

    n = 64
    glyphs, _ = render_digits(n, np.random.default_rng(3))
    p = _draw_params(np.random.default_rng(4), n)
    p["neighbours"][:] = False
    p["noise_std"][:] = 0.0
    img = compose(glyphs, p, slice(0, n), 32).astype(np.float32) / 255
    luma = np.einsum("nchw,c->nhw", img, LUMA.astype(np.float32))
    alpha = _place(torch.from_numpy(glyphs.astype(np.float32) / 255), p["height"], *p["shift"].T, 32)[:, 0].numpy()
    contrast = np.array([abs(luma[i][alpha[i] > 0.9].mean() - luma[i][alpha[i] == 0].mean()) for i in range(n)])
    assert contrast.min() > 0.15 and np.median(contrast) > 0.3


def test_colour_with_luma_hits_the_target_exactly():
    rng = np.random.default_rng(0)
    rgb, target = rng.random((100, 3)), rng.random(100)
    out = _colour_with_luma(rgb, target)
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out @ LUMA, target, atol=1e-6)


def test_prepare_images_synthetic_rgb_at_64_and_as_grey(tmp_path):
    cfg = PrepareImagesParams(source="synthetic-rgb", image_size=64, channels=3, n_train=40, n_test=20)
    meta = prepare_images(cfg, tmp_path / "rgb", seed=0)
    assert meta["shape"]["train"] == [40, 3, 64, 64] and meta["class_names"] == [str(d) for d in range(10)]
    grey = prepare_images(cfg.model_copy(update={"channels": 1, "image_size": 32}), tmp_path / "grey", seed=0)
    assert grey["shape"]["test"] == [20, 1, 32, 32]


# ---------------------------------------------------------------------------- lsun:<dir>

def test_lsun_without_lmdb_is_one_line_naming_the_package(tmp_path, monkeypatch):
    (tmp_path / "bedroom_train_lmdb").mkdir()
    monkeypatch.setitem(sys.modules, "lmdb", None)  # `import lmdb` raises ImportError
    cfg = PrepareImagesParams(source=f"lsun:{tmp_path}", image_size=32, channels=3)
    with pytest.raises(SourceUnavailable) as err:
        load_source(cfg, seed=0)
    msg = str(err.value)
    assert "\n" not in msg and "'lmdb' package" in msg and "pip install lmdb" in msg and f"lsun:{tmp_path}" in msg


def _write_lmdb(path, images) -> None:
    import lmdb
    from PIL import Image

    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, arr in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            txn.put(f"{i:08d}".encode(), buf.getvalue())
    env.close()


def test_lsun_folder_reads_categories_and_splits(tmp_path, monkeypatch):
    pytest.importorskip("lmdb")
    # two categories, solid colours so the labels can be checked from the pixels
    _write_lmdb(tmp_path / "bedroom_train_lmdb", np.full((12, 40, 48, 3), (200, 0, 0), np.uint8))
    _write_lmdb(tmp_path / "tower_train_lmdb", np.full((8, 40, 48, 3), (0, 0, 200), np.uint8))
    monkeypatch.chdir(tmp_path)  # torchvision would drop its key cache here: it must not
    cfg = PrepareImagesParams(source=f"lsun:{tmp_path}", image_size=16, channels=3, test_fraction=0.25)
    data = load_source(cfg, seed=0)
    assert data.class_names == ["bedroom", "tower"]
    (xtr, ytr), (xte, yte) = data.train, data.test
    assert xtr.shape == (15, 3, 16, 16) and xte.shape == (5, 3, 16, 16)
    assert np.bincount(yte).tolist() == [3, 2]
    assert np.all(xtr[ytr == 0][:, 0] == 200) and np.all(xtr[ytr == 1][:, 2] == 200)
    assert not list(tmp_path.glob("_cache_*"))


def test_lsun_errors_are_one_line(tmp_path):
    pytest.importorskip("lmdb")
    with pytest.raises(SourceUnavailable, match="no such folder"):
        load_source(PrepareImagesParams(source=f"lsun:{tmp_path / 'missing'}"), seed=0)
    with pytest.raises(ImageSourceError, match="no <category>_train_lmdb"):
        load_source(PrepareImagesParams(source=f"lsun:{tmp_path}"), seed=0)
    (tmp_path / "kittens_train_lmdb").mkdir()
    with pytest.raises(ImageSourceError, match="kittens"):
        load_source(PrepareImagesParams(source=f"lsun:{tmp_path}"), seed=0)
