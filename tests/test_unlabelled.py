"""Unlabelled and one-class image sets (issue 24, Deliver 1): `has_labels` in meta.json, stages
that need labels skip in one line, the params gate compares sections, and the README's folder
example (the `photos` preset on a folder) runs end to end."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, arch_neutral_widths, dvc, make_pipeline_repo, tiny_params
from genlab.check_params import check_params

EXAMPLE_PREFIX = "genlab preset run photos -S prepare_images.source=folder:"
# tiny_params shrinks mnist28's widths; dcgan64 refuses them, so they go back to their defaults
NEUTRAL = arch_neutral_widths()
MNIST28_DEFAULTS = NEUTRAL["gan"]


def folder_example() -> list[str]:
    """The README's folder example (else docs/unlabelled.md's): the photos preset on a folder, as argv."""
    for doc in (ROOT / "README.md", ROOT / "docs" / "unlabelled.md"):
        lines = [ln.strip() for ln in doc.read_text().splitlines() if ln.strip().startswith(EXAMPLE_PREFIX)]
        if lines:
            return shlex.split(lines[0])
    raise AssertionError(f"no line starting with {EXAMPLE_PREFIX!r} in README.md or docs/unlabelled.md")


def write_photo_folder(folder: Path, n: int, size: int = 32, seed: int = 0) -> Path:
    """`n` RGB PNGs in one flat folder: smooth colour gradients with a disc, no labels."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        base = rng.uniform(40, 200, 3)
        img = base + 50 * np.stack([xx, yy, 1 - xx], -1) * rng.uniform(-1, 1, 3)
        cy, cx, r = rng.uniform(0.3, 0.7, 2).tolist() + [rng.uniform(0.1, 0.25)]
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"photo{i:03d}.png")
    return folder


def params_file(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(**sections)))
    return path


# ---------------------------------------------------------------- the params gate

def test_gate_refuses_image_size_the_arch_cannot_make(tmp_path):
    problems = check_params(params_file(tmp_path, prepare_images={"image_size": 64, "channels": 3}))
    assert len(problems) == 1, problems
    line = problems[0]
    assert "prepare_images.image_size=64" in line and "gan.arch=mnist28" in line and "dcgan64" in line
    assert not check_params(params_file(tmp_path, prepare_images={"image_size": 64, "channels": 3},
                                        gan={"arch": "dcgan64", **MNIST28_DEFAULTS}))


def test_gate_refuses_a_batch_larger_than_a_known_set(tmp_path):
    problems = check_params(params_file(tmp_path, prepare_images={"limit": 24}))
    assert [p.split(": ", 1)[1].split("=")[0] for p in problems] == ["gan.batch_size", "vae.batch_size"]
    assert "prepare_images.limit=24" in problems[0] and "at most 24" in problems[0]
    problems = check_params(params_file(tmp_path, gan={"limit": 20}))
    assert len(problems) == 1 and "gan.batch_size=32" in problems[0] and "gan.limit=20" in problems[0]


def test_gate_refuses_conditional_without_labels(tmp_path):
    flat = write_photo_folder(tmp_path / "flat", 4, size=8)
    problems = check_params(params_file(tmp_path, prepare_images={"source": f"folder:{flat}"},
                                        gan={"conditional": True}))
    assert len(problems) == 1 and "gan.conditional=true" in problems[0] and f"folder:{flat}" in problems[0]
    problems = check_params(params_file(tmp_path, prepare_images={"source": "celeba"}, vae={"conditional": True}))
    assert len(problems) == 1 and "vae.conditional=true" in problems[0] and "celeba" in problems[0]
    for name in ("a", "b"):  # class sub-folders are labels
        write_photo_folder(tmp_path / "classes" / name, 3, size=8)
    assert not check_params(params_file(tmp_path, prepare_images={"source": f"folder:{tmp_path / 'classes'}"},
                                        gan={"conditional": True}))


# ------------------------------------------- the README's folder example (the photos preset), end to end

# the pipeline shrunk to seconds: tiny nets, a few steps, few samples. params.yaml holds the keys the
# preset leaves alone; the preset's own keys are shrunk with -S after the README's line (a later -S wins)
SHRINK = {
    # 60 photos: 24 held out (12 test, 12 val), so the label-free judges have images to compare
    "prepare_images": {"limit": None, "test_fraction": 0.4},
    "gan": {**MNIST28_DEFAULTS, "limit": None, "ema": 0.0, "n_samples": 16},
    "vae": {**NEUTRAL["vae"], "batch_size": 8, "epochs": 2},  # onecycle needs >= 8 steps
    "generate": {"n_samples": 100, "grid_size": 16},
    "evaluate": {"n_real": 100, "kid_subset_size": 10},
    "render": {"points": 2, "steps": 3, "compare_n": 8},
    "interpret": {"n_images": 2, "heat_images": 4, "pool": 20, "vae": False},
}
SHRINK_PRESET = {"gan.ngf": 8, "gan.ndf": 8, "gan.batch_size": 64, "gan.images": 72, "gan.sample_every_images": 36,
                 "vae.conv_channels": [8, 8, 8], "vae.dense": 16}


@pytest.mark.slow
def test_readme_folder_example_runs_every_stage(tmp_path):
    """Issue 24's Done-when: a one-class folder of RGB photo-like images through `dvc repro` with the
    `photos` preset shrunk (the README's folder example is that preset on your folder)."""
    import os
    import subprocess
    import sys

    from genlab.presets import load_preset, override_value

    photos = write_photo_folder(tmp_path / "photos", 60)
    repo = make_pipeline_repo(tmp_path / "repo", tiny_params(**SHRINK))
    argv = [a.replace("DIR", str(photos)) for a in folder_example()]
    assert argv[:4] == ["genlab", "preset", "run", "photos"] and f"prepare_images.source=folder:{photos}" in argv
    preset = load_preset("photos", ROOT / "presets")
    assert preset["prepare_images"]["image_size"] == 32 and preset["gan"]["diffaugment"]  # what is being shrunk
    shrink = [w for k, v in SHRINK_PRESET.items() for w in ("-S", f"{k}={override_value(v)}")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", *argv[1:], *shrink], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["gan"]["diffaugment"] == preset["gan"]["diffaugment"] and params["gan"]["ngf"] == 8  # preset, then -S
    meta = json.loads((repo / "data/images/meta.json").read_text())
    assert meta["has_labels"] is False and meta["num_classes"] == 1 and meta["shape"]["train"][1:] == [3, 32, 32]
    assert set(meta["shape"]) == {"train", "test", "val"}
    # the judge classifier says in one line why it was skipped, and writes no checkpoint
    assert re.search(r"^(\[genlab\] )?train_classifier: skipped: folder:\S+ has no labels", out, re.M), out
    assert json.loads((repo / "models/classifier/skipped.json").read_text())["skipped"] is True
    assert not (repo / "models/classifier/checkpoint.pt").exists()
    assert json.loads((repo / "metrics/classifier.json").read_text()) == {"classifier/skipped": 1}
    # batch 64 on 36 training images: clamped in one line, so the GAN trained (72 images: 2 steps)
    assert "gan.batch_size=64 is larger than the 36 training images: using 36" in out
    assert json.loads((repo / "metrics/gan.json").read_text())["gan/steps"] == 2
    assert "interpret: linear probe and latent arithmetic skipped" in out
    for path in ("models/gan/checkpoint.pt", "models/vae/checkpoint.pt", "data/generated/gan.npy",
                 "metrics/evaluate.json", "metrics/render.json", "metrics/interpret.json", "reports/index.md"):
        assert (repo / path).exists(), path
    # judged without labels: every row has the label-free numbers, and the report shows them and the samples
    rows = json.loads((repo / "metrics/evaluate.json").read_text())
    for row in ("real", "gan", "vae"):
        assert {"c2st_acc", "precision", "recall", "memorisation"} <= set(rows[row]), rows
        assert 0.0 <= rows[row]["c2st_acc"] <= 1.0
    index = (repo / "reports/index.md").read_text()
    assert "c2st_acc" in index
    shown = re.findall(r"!\[[^]]*\]\(([^)]+)\)", index)
    assert any(s.endswith("gan_grid.png") for s in shown) and all((repo / "reports" / s).exists() for s in shown), shown
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    # and `genlab serve` answers for the trained 32 px RGB generators (the GAN's two steps may
    # have collapsed it to one image; the VAE's samples must change with the seed)
    from serve_helpers import serve_answers
    served = serve_answers(repo / "models", (3, 32, 32), tmp_path / "serve.log", differ=frozenset({"vae"}))
    assert {m["name"] for m in served["models"]} >= {"gan", "vae"}, served
