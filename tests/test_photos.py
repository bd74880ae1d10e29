"""The offline photo folder (crops of scikit-image's sample photographs) and the data-efficient
GAN training for small sets: DiffAugment, the budget in images seen, the batch clamp."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("skimage", reason="the photo folder needs scikit-image (pip install 'genlab[photos]')")

from genlab.cli import main as genlab_main  # noqa: E402
from genlab.data.images import PrepareImagesParams, load_source  # noqa: E402
from genlab.data.photo_folder import make_photo_folder, photo_crops  # noqa: E402


def test_photo_folder_is_flat_rgb_deterministic_and_loads_as_one_class(tmp_path):
    out = make_photo_folder(tmp_path / "photos", n=24, size=32, seed=3)
    files = sorted(out.iterdir())
    assert len(files) == 24 and all(f.suffix == ".png" and f.is_file() for f in files)  # flat, no sub-folders
    img = np.asarray(Image.open(files[0]))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    crops = photo_crops(24, 32, seed=3)
    assert np.array_equal(np.stack([np.asarray(Image.open(f)) for f in files]), crops)
    assert not np.array_equal(photo_crops(24, 32, seed=4), crops)
    # photographs, not flat colour: colour channels differ and every crop has texture
    x = crops.astype(np.float32)
    assert np.abs(x[..., 0] - x[..., 2]).mean() > 10
    assert x.std(axis=(1, 2, 3)).min() > 5
    # the folder source reads it as an unlabelled (one-class) RGB set
    cfg = PrepareImagesParams(source=f"folder:{out}", image_size=32, channels=3)
    s = load_source(cfg, seed=0)
    assert s.train[0].shape[1:] == (3, 32, 32) and len(s.class_names) == 1
    assert len(s.train[0]) + len(s.test[0]) == 24


def test_photo_folder_cli(tmp_path, capsys):
    assert genlab_main(["photos", str(tmp_path / "p"), "--n", "5", "--size", "16", "--seed", "1"]) == 0
    assert len(list((tmp_path / "p").glob("*.png"))) == 5
    assert "5 images" in capsys.readouterr().out
