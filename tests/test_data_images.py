"""prepare_images: every offline source on real files, the options, determinism, meta.json,
atomic output and params errors through the stage script. No network."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import run_stage, tiny_params
from genlab.data.arrays import has_labels, load_meta, load_split
from genlab.data.download import SourceUnavailable
from genlab.data.idx import IdxError, read_idx, write_idx
from genlab.data.images import (
    FASHION_CLASSES,
    ImageSourceError,
    PrepareImagesParams,
    load_source,
    prepare_images,
    to_channels,
    to_size,
)
from genlab.data.synthetic_digits import digit_fonts, font_dir, render_digits
from genlab.runtime import sha256_file

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy", "val_images.npy", "val_labels.npy")


def cfg(**kw) -> PrepareImagesParams:
    return PrepareImagesParams(**{"n_train": 100, "n_test": 30, **kw})


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


# ---------------------------------------------------------------- synthetic-digits

def test_synthetic_digits_format_balance_and_checksums(digits_dir):
    x, y = load_split(digits_dir, "train")
    xt, yt = load_split(digits_dir, "test")
    assert x.shape == (600, 1, 28, 28) and xt.shape == (200, 1, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [60] * 10 and np.bincount(yt).tolist() == [20] * 10
    meta = load_meta(digits_dir)
    assert meta["source"] == "synthetic-digits" and meta["seed"] == 0 and meta["num_classes"] == 10
    assert meta["class_names"] == [str(d) for d in range(10)]
    assert meta["shape"] == {"train": [600, 1, 28, 28], "test": [200, 1, 28, 28], "val": [100, 1, 28, 28]}
    assert meta["has_labels"] is True
    assert set(meta["sha256"]) == set(FILES)
    for name, digest in meta["sha256"].items():
        assert sha256_file(digits_dir / name) == digest
    assert meta["stats"]["train"]["balance"] == 1.0 and meta["stats"]["train"]["blank_fraction"] == 0.0
    assert 20 < meta["stats"]["train"]["mean_pixel"] < 60  # MNIST's is 33.3


def test_synthetic_digits_are_centred_like_mnist(digits_dir):
    """Each digit fits a ~20x20 box, its centre of mass at the centre of the 28x28 image."""
    x, _ = load_split(digits_dir, "train")
    w = x[:, 0].astype(np.float64)
    coords = np.arange(28) + 0.5
    cy = (w.sum(2) * coords).sum(1) / w.sum((1, 2))
    cx = (w.sum(1) * coords).sum(1) / w.sum((1, 2))
    off = np.hypot(cy - 14, cx - 14)
    # exact up to resampling, except lopsided digits moved back inside the frame
    assert np.quantile(off, 0.95) < 0.1 and off.max() < 2.5
    ink = x[:, 0] > 60
    rows, cols = ink.any(2), ink.any(1)
    extent = np.maximum(rows.sum(1), cols.sum(1))
    assert extent.max() <= 21 and np.median(extent) >= 19
    frame = np.concatenate([x[:, 0, 0], x[:, 0, -1], x[:, 0, :, 0], x[:, 0, :, -1]], axis=1)
    assert frame.max() < 16 and frame.mean() < 0.1  # no digit runs off the image


def test_synthetic_digits_are_learnable_by_a_nearest_centroid_rule(digits_dir):
    """A classifier-free check that images and labels agree: nearest class mean, raw pixels."""
    x, y = load_split(digits_dir, "train")
    xt, yt = load_split(digits_dir, "test")
    flat = lambda a: a.reshape(len(a), -1).astype(np.float32) / 255  # noqa: E731
    centroids = np.stack([flat(x)[y == c].mean(0) for c in range(10)])
    pred = ((flat(xt)[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (pred == yt).mean() > 0.6  # chance is 0.1


def test_synthetic_digits_deterministic_from_seed():
    a, la = render_digits(64, np.random.default_rng(7))
    b, lb = render_digits(64, np.random.default_rng(7), batch_size=10)  # batching does not matter
    c, _ = render_digits(64, np.random.default_rng(8))
    assert a.tobytes() == b.tobytes() and la.tobytes() == lb.tobytes()
    assert a.tobytes() != c.tobytes()
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads == 1 else 1)  # nor does the number of threads
    try:
        d, _ = render_digits(64, np.random.default_rng(7))
    finally:
        torch.set_num_threads(threads)
    assert a.tobytes() == d.tobytes()


def test_prepare_images_same_seed_byte_identical_files(tmp_path):
    prepare_images(cfg(), tmp_path / "a", seed=3)
    prepare_images(cfg(), tmp_path / "b", seed=3)
    prepare_images(cfg(), tmp_path / "c", seed=4)
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    assert load_meta(tmp_path / "a")["sha256"] == load_meta(tmp_path / "b")["sha256"]
    diff = file_bytes(tmp_path / "c")
    assert diff["train_images.npy"] != file_bytes(tmp_path / "a")["train_images.npy"]


def test_synthetic_test_split_does_not_depend_on_n_train(tmp_path):
    prepare_images(cfg(n_train=50), tmp_path / "a", seed=0)
    prepare_images(cfg(n_train=80), tmp_path / "b", seed=0)
    assert file_bytes(tmp_path / "a")["test_images.npy"] == file_bytes(tmp_path / "b")["test_images.npy"]


def test_digit_fonts_drop_blank_notdef_and_symbol_fonts(tmp_path):
    """A folder with one good font, one without digit glyphs (renders blank/notdef) and one
    symbol font whose '0' is another glyph keeps only the good one."""
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for name in ("DejaVuSans.ttf", "DejaVuSansDisplay.ttf", "cmsy10.ttf", "LastResortHE-Regular.ttf"):
        shutil.copy(font_dir() / name, fonts / name)
    assert [f.name for f in digit_fonts(str(fonts))] == ["DejaVuSans"]
    names = {f.name for f in digit_fonts()}
    assert len(names) >= 10 and not names & {"cmsy10", "cmex10", "DejaVuSansDisplay", "LastResortHE-Regular"}


def test_sample_grid_is_written(tmp_path):
    prepare_images(cfg(n_train=40, n_test=10), tmp_path / "images", seed=0, reports_dir=tmp_path / "reports")
    png = tmp_path / "reports" / "samples.png"
    with Image.open(png) as im:
        assert im.width > 300 and im.height > 300


# ---------------------------------------------------------------- options

def test_image_size_channels_and_limit_options(tmp_path):
    meta = prepare_images(cfg(image_size=32, channels=3, limit=60), tmp_path / "o", seed=0)
    x, y = load_split(tmp_path / "o", "train")
    xt, _ = load_split(tmp_path / "o", "test")
    assert x.shape == (60, 3, 32, 32) and xt.shape == (10, 3, 32, 32) and len(y) == 60
    assert np.array_equal(x[:, 0], x[:, 1]) and np.array_equal(x[:, 1], x[:, 2])  # grey repeated
    assert meta["params"]["limit"] == 60 and meta["shape"]["train"] == [60, 3, 32, 32]


def test_to_channels_round_trip_and_luma():
    grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 1, 4, 4)
    assert np.array_equal(to_channels(to_channels(grey, 3), 1), grey)
    rgb = np.zeros((1, 3, 1, 3), np.uint8)
    rgb[0, 0, 0, 0] = rgb[0, 1, 0, 1] = rgb[0, 2, 0, 2] = 255  # pure red, green, blue pixels
    assert to_channels(rgb, 1)[0, 0, 0].tolist() == [76, 150, 29]  # ITU-R 601, as PIL's "L"


def test_to_size_centre_crops_then_resizes():
    img = np.zeros((1, 1, 10, 20), np.uint8)
    img[..., 5:15] = 200  # the centre square of a wide image
    out = to_size(img, 5)
    assert out.shape == (1, 1, 5, 5) and out.dtype == np.uint8 and (out == 200).all()
    same = np.random.default_rng(0).integers(0, 256, (3, 1, 8, 8), dtype=np.uint8)
    assert np.array_equal(to_size(same, 8), same)


# ---------------------------------------------------------------- idx:<dir>

def write_idx_set(folder: Path, rng: np.random.Generator, gz: bool, n=(50, 20), names=("train", "t10k")):
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {}
    for split, prefix, count in zip(("train", "test"), names, n):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_source_reads_written_files(tmp_path, gz):
    arrays = write_idx_set(tmp_path / "idx", np.random.default_rng(1), gz)
    meta = prepare_images(PrepareImagesParams(source=f"idx:{tmp_path / 'idx'}"), tmp_path / "out", seed=0)
    x, y = load_split(tmp_path / "out", "train")
    assert np.array_equal(x[:, 0], arrays["train"][0]) and np.array_equal(y, arrays["train"][1])
    # the IDX test split is cut in two without overlap: test keeps half, val (held out of everything) half
    (xt, yt), (xv, yv) = load_split(tmp_path / "out", "test"), load_split(tmp_path / "out", "val")
    assert len(xt) == len(xv) == 10
    rows = {r.tobytes(): lab for r, lab in zip(arrays["test"][0], arrays["test"][1])}
    seen = [r.tobytes() for r in np.concatenate([xt, xv])[:, 0]]
    assert sorted(seen) == sorted(rows) and [rows[k] for k in seen] == np.concatenate([yt, yv]).tolist()
    assert meta["has_labels"] is True and meta["shape"]["val"] == [10, 1, 28, 28]
    assert meta["num_classes"] == 10 and meta["class_names"] == [str(i) for i in range(10)]


def test_idx_source_limit_resize_and_test_prefix(tmp_path):
    write_idx_set(tmp_path / "idx", np.random.default_rng(2), gz=False, names=("train", "test"))
    prepare_images(PrepareImagesParams(source=f"idx:{tmp_path / 'idx'}", limit=12, image_size=14, channels=3),
                   tmp_path / "out", seed=0)
    x, _ = load_split(tmp_path / "out", "train")
    xt, _ = load_split(tmp_path / "out", "test")
    assert x.shape == (12, 3, 14, 14) and xt.shape == (1, 3, 14, 14)  # limit // 6 = 2: one moves to val


def test_idx_round_trip_other_dtypes(tmp_path):
    for arr in (np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5, np.linspace(0, 1, 6, dtype=np.float32)):
        assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", arr)), arr)


def test_idx_bad_files_fail_clearly(tmp_path):
    folder = tmp_path / "idx"
    write_idx_set(folder, np.random.default_rng(3), gz=False)
    bad = folder / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-7])  # truncated payload
    with pytest.raises(ImageSourceError, match="train-images-idx3-ubyte: IDX header says shape"):
        load_source(PrepareImagesParams(source=f"idx:{folder}"), 0)
    bad.write_bytes(b"PK\x03\x04not idx at all")
    with pytest.raises(IdxError, match="bad magic"):
        read_idx(bad)
    write_idx_set(folder, np.random.default_rng(3), gz=False)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ImageSourceError, match="no t10k-labels-idx1-ubyte"):
        load_source(PrepareImagesParams(source=f"idx:{folder}"), 0)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_idx():
    t0 = time.perf_counter()
    data = load_source(PrepareImagesParams(source=f"idx:{FASHION_DIR}"), 0)
    seconds = time.perf_counter() - t0
    x, y = data.train
    xt, yt = data.test
    assert x.shape == (60000, 1, 28, 28) and xt.shape == (10000, 1, 28, 28) and x.dtype == np.uint8
    assert y.min() == 0 and y.max() == 9 and np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10
    assert data.class_names == FASHION_CLASSES and data.info["recognised_as"] == "fashion-mnist"
    assert 60 < x.mean() < 80  # Fashion-MNIST's mean pixel is 72.9
    print(f"fashion-mnist idx read: {seconds:.2f} s")


# ---------------------------------------------------------------- folder:<dir>

def write_image(path: Path, size: tuple[int, int], value: int, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = (value, 255 - value, 0) if mode == "RGB" else value
    Image.new(mode, size, color).save(path)


def test_folder_source_with_class_subfolders(tmp_path):
    root = tmp_path / "photos"
    for c, name in enumerate(("cat", "dog", "emu")):
        for i in range(5):
            write_image(root / name / f"{i}.{'png' if i % 2 else 'jpg'}", (40 + 7 * i, 30), 90 * c + 8 * i)
    (root / "dog" / "notes.txt").write_text("not an image")
    c = PrepareImagesParams(source=f"folder:{root}", image_size=16, channels=3, test_fraction=0.2)
    meta = prepare_images(c, tmp_path / "out", seed=0)
    x, y = load_split(tmp_path / "out", "train")
    xt, yt = load_split(tmp_path / "out", "test")
    assert meta["class_names"] == ["cat", "dog", "emu"] and meta["num_classes"] == 3
    xv, yv = load_split(tmp_path / "out", "val")
    assert x.shape == (12, 3, 16, 16) and xt.shape == (2, 3, 16, 16) and xv.shape == (1, 3, 16, 16)
    assert np.bincount(np.concatenate([yt, yv]), minlength=3).tolist() == [1, 1, 1]
    assert np.bincount(y).tolist() == [4, 4, 4] and meta["has_labels"] is True
    # each image is one flat colour, so its pixels tell which file it came from: no overlap
    red_train, red_test = x[:, 0, 8, 8].astype(int), np.concatenate([xt, xv])[:, 0, 8, 8].astype(int)
    assert np.abs(red_test[:, None] - red_train[None]).min() >= 4  # (JPEG moves a value by 1-2)
    prepare_images(c, tmp_path / "again", seed=0)
    assert file_bytes(tmp_path / "out") == file_bytes(tmp_path / "again")
    prepare_images(c, tmp_path / "other", seed=5)
    assert file_bytes(tmp_path / "out")["test_images.npy"] != file_bytes(tmp_path / "other")["test_images.npy"]


def test_folder_source_without_subfolders_is_one_class(tmp_path):
    root = tmp_path / "cars"
    for i in range(10):
        write_image(root / f"car{i}.png", (30, 20 + i), 20 * i, mode="L")
    meta = prepare_images(PrepareImagesParams(source=f"folder:{root}", image_size=12, channels=1),
                          tmp_path / "out", seed=0)
    x, y = load_split(tmp_path / "out", "train")
    assert meta["class_names"] == ["cars"] and x.shape == (9, 1, 12, 12) and set(y.tolist()) == {0}
    assert meta["shape"]["test"] == [1, 1, 12, 12]
    # a flat folder has no labels: zeros keep the format, meta says so, and has_labels() agrees
    assert meta["has_labels"] is False and not has_labels(meta)


def test_folder_source_unreadable_image_is_named(tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        write_image(root / f"{i}.png", (8, 8), 10 * i)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageSourceError, match="broken.png: not a readable image"):
        prepare_images(PrepareImagesParams(source=f"folder:{root}"), tmp_path / "out", seed=0)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- torchvision sources, offline

def test_torchvision_source_unreachable_mirror_is_source_unavailable(tmp_path, monkeypatch):
    """MNIST from a mirror on a closed local port: one clear error, nothing written."""
    from torchvision import datasets

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(datasets.MNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    with pytest.raises(SourceUnavailable) as err:
        prepare_images(PrepareImagesParams(source="mnist", root=str(tmp_path / "cache")), tmp_path / "out", seed=0)
    msg = str(err.value)
    assert "'mnist'" in msg and "synthetic-digits" in msg and "idx:" in msg and "\n" not in msg
    assert "Connection refused" in msg  # the cause, not just "failed"
    assert not (tmp_path / "out").exists()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


# ---------------------------------------------------------------- the stage script

def write_params(folder: Path, **section) -> None:
    params = tiny_params(prepare_images=section, tracking={"enabled": False})
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


@pytest.mark.parametrize(
    "section, expected",
    [
        ({"source": "mnistt"}, "params.yaml: prepare_images.source: unknown image source; allowed: synthetic-digits, "
                               "synthetic-rgb, mnist, fashion-mnist, kmnist, cifar10, svhn, celeba, idx:<dir>, "
                               "folder:<dir>, lsun:<dir>, got 'mnistt'"),
        ({"source": "idx:"}, "params.yaml: prepare_images.source: idx:<dir> needs a folder after 'idx:', got 'idx:'"),
        ({"image_size": 0}, "params.yaml: prepare_images.image_size: must be >= 8, got 0"),
        ({"channels": 2}, "params.yaml: prepare_images.channels: must be one of 1 or 3, got 2"),
        ({"limit": -5}, "params.yaml: prepare_images.limit: must be > 0, got -5"),
        ({"test_fraction": 1.5}, "params.yaml: prepare_images.test_fraction: must be < 1"),
        ({"n_train": "many"}, "params.yaml: prepare_images.n_train:"),
        ({"colour": True}, "params.yaml: prepare_images.colour: unknown key (allowed: channels,"),
    ],
)
def test_stage_rejects_bad_params_and_creates_nothing(tmp_path, section, expected):
    write_params(tmp_path, **section)
    proc = run_stage("prepare_images.py", tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.slow
def test_stage_writes_outputs_and_a_failing_run_changes_nothing(tmp_path):
    write_params(tmp_path, n_train=100, n_test=20)
    run_stage("prepare_images.py", tmp_path)
    out = tmp_path / "data" / "images"
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert {Path("data/images/meta.json"), Path("reports/data/samples.png"), Path("metrics/data.json")} <= set(before)
    metrics = json.loads((tmp_path / "metrics" / "data.json").read_text())
    assert metrics["data/n_train"] == 100 and metrics["data/class_balance_train"] == 1.0
    assert load_meta(out)["sha256"]["train_images.npy"] == sha256_file(out / "train_images.npy")

    missing = tmp_path / "no-such-dir"
    write_params(tmp_path, source=f"idx:{missing}")
    proc = run_stage("prepare_images.py", tmp_path, check=False)
    assert proc.returncode == 1
    assert f"data source 'idx:{missing}': no such folder" in proc.stderr and "synthetic-digits" in proc.stderr
    after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    after.pop(Path("params.yaml")), before.pop(Path("params.yaml"))
    assert after == before
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["images"]  # no temp folder left


def test_failing_source_leaves_previous_output_untouched(tmp_path):
    prepare_images(cfg(n_train=20, n_test=10), tmp_path / "out", seed=0)
    before = file_bytes(tmp_path / "out")
    bad = tmp_path / "idx"
    write_idx_set(bad, np.random.default_rng(0), gz=True)
    os.remove(bad / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(ImageSourceError):
        prepare_images(PrepareImagesParams(source=f"idx:{bad}"), tmp_path / "out", seed=0)
    assert file_bytes(tmp_path / "out") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx", "out"]
