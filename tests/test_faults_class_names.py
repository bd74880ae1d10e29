"""Issue 25, finding 7: the class names of a `folder:` set with one sub-folder per class reach
the conditional generator's checkpoint, so `genlab serve` offers "apple", not "0"."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_stage, tiny_params
from genlab.serve.generator import GeneratorService

pytestmark = pytest.mark.faults

CLASSES = ("apple", "banana", "cherry")


def _folder(root, n=24, size=28):
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = rng.integers(0, 80, (size, size), dtype=np.uint8) + np.uint8(60 * k)
            Image.fromarray(img).save(root / name / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("stage,section,out", [("train_gan.py", "gan", "models/gan/checkpoint.pt"),
                                               ("train_vae.py", "vae", "models/vae/checkpoint.pt")])
def test_conditional_model_keeps_the_folder_class_names(tmp_path, stage, section, out):
    folder = _folder(tmp_path / "fruit")
    params = tiny_params(tracking={"enabled": False}, device="cpu",
                         prepare_images={"source": f"folder:{folder}", "image_size": 28, "channels": 1},
                         gan={"conditional": True, "limit": None, "batch_size": 16},
                         vae={"conditional": True, "epochs": 1, "batch_size": 16, "lr_schedule": "constant"})
    work = tmp_path / "w"
    work.mkdir()
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage("prepare_images.py", work)
    run_stage(stage, work)
    service = GeneratorService.from_checkpoint(work / out)
    assert service.class_names == list(CLASSES)
    assert service.check_label("banana") == 1  # a class name is accepted where an index is
