"""check_params: every section of params.yaml, and the local sources it names, are checked
before any stage runs."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import ROOT, dvc, make_pipeline_repo, run_stage, tiny_params
from genlab.check_params import check_params
from genlab.data.idx import write_idx
from genlab.data.source_checks import check_image_source, check_text_source
from genlab.params import CommonParams
from genlab.sections import SECTIONS


def test_repo_params_cover_every_section_and_are_valid():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(data) == set(SECTIONS) | set(CommonParams.model_fields)
    assert check_params(ROOT / "params.yaml", base=ROOT) == []


def test_every_stage_of_dvc_yaml_depends_on_check_params():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "check_params" in stages
    for name, stage in stages.items():
        if name != "check_params":
            assert "data/params.ok" in stage["deps"], name
    # check_params watches the whole file (every section, and a file DVC cannot read keys from)
    assert "params.yaml" in stages["check_params"]["deps"] and "params" not in stages["check_params"]


def test_all_problems_reported_at_once(tmp_path):
    params = tiny_params(gan={"lr": -1}, render={"interpolation": "cubic"}, bogus={"x": 1})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage("check_params.py", tmp_path, check=False)
    assert proc.returncode == 2
    assert sorted(proc.stderr.splitlines()) == [
        "error: check_params: params.yaml: bogus: unknown section (allowed: "
        + ", ".join([*CommonParams.model_fields, *SECTIONS]) + ")",
        "error: check_params: params.yaml: gan.lr: must be > 0, got -1",
        "error: check_params: params.yaml: render.interpolation: must be one of 'linear' or 'slerp', got 'cubic'",
    ]
    assert not (tmp_path / "data").exists()


def test_valid_params_write_the_marker(stage_dir):
    run_stage("check_params.py", stage_dir)
    assert (stage_dir / "data/params.ok").read_text() == "params.yaml is valid\n"


@pytest.mark.parametrize(("text", "line"), [
    ("", "error: check_params: params.yaml: is empty; expected a mapping of sections (seed, device, tracking, and one per stage)"),
    ("# only a comment\n", "error: check_params: params.yaml: is empty; expected a mapping of sections (seed, device, tracking, and one per stage)"),
    ("seed: 0\ngan:\n  lr: [1, 2\nvae: {}\n",
     "error: check_params: params.yaml: not valid YAML: line 4, column 4: expected ',' or ']', but got ':' (while parsing a flow sequence)"),
    ("seed: 0\ngan: lr: 1\n", "error: check_params: params.yaml: not valid YAML: line 2, column 8: mapping values are not allowed here"),
    ("- seed\n- gan\n", "error: check_params: params.yaml: must be a mapping of sections, got a list"),
])
def test_empty_or_malformed_params_file_is_one_line_with_its_position(tmp_path, text, line):
    (tmp_path / "params.yaml").write_text(text)
    proc = run_stage("check_params.py", tmp_path, check=False)
    assert (proc.returncode, proc.stderr.splitlines()) == (2, [line])


# --- local data sources ----------------------------------------------------------------------

def write_idx_files(folder, gz=False, skip=()):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", 6), ("t10k", 3)):
        if f"{prefix}-images" not in skip:
            write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.integers(0, 256, (n, 4, 4), dtype=np.uint8))
        if f"{prefix}-labels" not in skip:
            write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", rng.integers(0, 3, n, dtype=np.uint8))
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_idx_source_with_all_four_files_passes(tmp_path, gz):
    write_idx_files(tmp_path / "idx", gz=gz)
    assert check_image_source(f"idx:{tmp_path / 'idx'}") is None
    assert check_image_source("idx:idx", base=tmp_path) is None  # relative to the working directory


def test_idx_source_problems_name_the_path(tmp_path):
    assert check_image_source(f"idx:{tmp_path}/nonexistent") == f"no such folder {tmp_path}/nonexistent"
    assert check_image_source("idx:nope", base=tmp_path) == f"no such folder {tmp_path}/nope"
    write_idx_files(tmp_path / "partial", skip=("t10k-labels",))
    assert check_image_source(f"idx:{tmp_path}/partial") == f"{tmp_path}/partial: no t10k-labels-idx1-ubyte[.gz] file"
    bad = write_idx_files(tmp_path / "bad")
    (bad / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04 a zip file")
    assert check_image_source(f"idx:{bad}") == f"{bad}/train-images-idx3-ubyte: not an IDX file (bad magic number 504b0304)"
    swapped = write_idx_files(tmp_path / "swapped", gz=True)
    (swapped / "train-labels-idx1-ubyte.gz").write_bytes((swapped / "t10k-images-idx3-ubyte.gz").read_bytes())
    assert "expected an IDX file of 1 dimension(s), the header says 3" in check_image_source(f"idx:{swapped}")
    (tmp_path / "afile").write_text("x")
    assert check_image_source(f"idx:{tmp_path}/afile") == f"{tmp_path}/afile is not a folder"


def test_folder_source_needs_an_image(tmp_path):
    folder = tmp_path / "photos"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "notes.txt").write_text("not an image")
    assert check_image_source(f"folder:{folder}") == (
        f"{folder} holds no image files (.png, .jpg, .jpeg, .bmp, .gif, .webp, .tif, .tiff, .ppm, .pgm, .pbm)")
    Image.new("RGB", (4, 4)).save(folder / "cats" / "a.JPG", format="JPEG")
    assert check_image_source(f"folder:{folder}") is None
    assert check_image_source("folder:missing", base=tmp_path) == f"no such folder {tmp_path}/missing"
    assert check_image_source("synthetic-digits") is None and check_image_source("mnist") is None


def test_text_source_must_be_a_readable_text_file(tmp_path):
    good = tmp_path / "novel.txt"
    good.write_text("Caf\u00e9 au lait, na\u00efve r\u00e9sum\u00e9.\n" * 10, encoding="utf-8")
    assert check_text_source(f"path:{good}") is None
    assert check_text_source("path:novel.txt", base=tmp_path) is None
    assert check_text_source("path:gone.txt", base=tmp_path) == f"no such file {tmp_path}/gone.txt"
    assert check_text_source(f"path:{tmp_path}") == f"{tmp_path} is not a file"
    (tmp_path / "empty.txt").write_bytes(b"")
    assert check_text_source(f"path:{tmp_path}/empty.txt") == f"{tmp_path}/empty.txt is empty"
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 20)
    assert check_text_source(f"path:{tmp_path}/latin1.txt") is None  # encoding: auto detects it
    assert check_text_source(f"path:{tmp_path}/latin1.txt", encoding="utf-8") == (
        f"{tmp_path}/latin1.txt is not utf-8 text (byte 0xe9 at offset 3); try prepare_text.encoding=auto or cp1252")
    (tmp_path / "data.gz").write_bytes(gzip.compress(b"hello" * 100))
    assert check_text_source(f"path:{tmp_path}/data.gz") == f"{tmp_path}/data.gz is not text (it holds NUL bytes)"
    assert check_text_source("pydoc") is None


def test_check_params_names_the_key_and_the_path(tmp_path):
    params = tiny_params(prepare_images={"source": "idx:/nonexistent"}, prepare_text={"source": "path:book.txt"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage("check_params.py", tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: check_params: params.yaml: prepare_images.source: idx:/nonexistent: no such folder /nonexistent",
        "error: check_params: params.yaml: prepare_text.source: path:book.txt: no such file book.txt",
    ]
    (tmp_path / "book.txt").write_text("a short book\n")
    write_idx_files(tmp_path / "idx")
    params = tiny_params(prepare_images={"source": "idx:idx"}, prepare_text={"source": "path:book.txt"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage("check_params.py", tmp_path)


def test_missing_source_through_dvc_repro_loses_no_data(tmp_path):
    """Issue 17, finding 1: DVC deletes a stage's outputs before running it, so the gate must
    refuse a missing local source before `prepare_images` starts."""
    repo = make_pipeline_repo(tmp_path / "repo", tiny_params(prepare_images={"n_train": 100, "n_test": 30},
                                                             tracking={"enabled": False}))  # MLflow: seconds per stage
    dvc(repo, "repro", "prepare_images")
    kept = ["data/images/train_images.npy", "data/images/test_labels.npy", "data/images/meta.json",
            "reports/data/samples.png", "metrics/data.json"]
    before = {p: (repo / p).read_bytes() for p in kept}
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare_images"]["source"] = "idx:/nonexistent"
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = dvc(repo, "repro", "prepare_images", check=False)
    assert proc.returncode != 0
    assert {p: (repo / p).read_bytes() if (repo / p).exists() else None for p in kept} == before
    assert "Running stage 'prepare_images'" not in proc.stdout
    assert ("error: check_params: params.yaml: prepare_images.source: idx:/nonexistent: no such folder /nonexistent"
            in proc.stderr + proc.stdout)
