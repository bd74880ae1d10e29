"""Shared fixtures: every test runs offline, on CPU, with MLflow in a temp store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = Path(__file__).with_name("tiny_params.yaml")

# One intra-op thread per process (inherited by every stage and `dvc` subprocess), unless the
# caller chose otherwise: `make test` runs one xdist worker per core, and torch/OpenMP/BLAS
# with a thread per core in each of them oversubscribe the cores; OpenMP threads then
# spin-wait for each other and a tiny stage costs 3-10x its CPU time.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# The same precision whatever the caller's shell says: tests that need fp32 forced set GENLAB_FP32
# themselves (`GENLAB_FP32=1 make test` failed the tests of the bf16 path).
os.environ.pop("GENLAB_FP32", None)

try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    HAS_CUDA = False

gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")

# The slowest test files, slowest first (seconds of one worker, `--durations=0`). `make test`
# hands whole files to its workers in collection order, so the long ones start first and the
# two workers finish together; xdist's default order (files with the most tests first) started
# them last, and one worker ran test_pipeline alone for minutes after the other had finished.
SLOW_FILES = ("test_pipeline.py", "test_unlabelled.py", "test_resume.py", "test_scale_out.py", "test_gan.py",
              "test_study.py", "test_study_cluster.py", "test_distributed.py", "test_two_nodes.py",
              "test_dvc_registry.py", "test_cli_generators.py", "test_vae.py", "test_tracking.py", "test_sections.py")


def pytest_configure(config):
    # keep the order below: xdist reorders files by test count unless told otherwise on the command line
    if hasattr(config.option, "loadscopereorder") and "--loadscope-reorder" not in config.invocation_params.args:
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(SLOW_FILES)))  # stable: tests keep their order


@pytest.fixture(autouse=True)
def _offline_env(monkeypatch, tmp_path_factory):
    """No test writes to the repo's mlflow.db or shows progress bars."""
    store = tmp_path_factory.getbasetemp() / "mlflow-session.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.setenv("GENLAB_PROGRESS", "0")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)


def deep_update(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_params(**overrides) -> dict:
    """The repo's params.yaml shrunk by tests/tiny_params.yaml, plus `overrides` (section dicts)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = deep_update(params, yaml.safe_load(TINY_PARAMS.read_text()) or {})
    return deep_update(params, overrides)


def arch_neutral_widths() -> dict:
    """Section overrides that put back the default widths tiny_params shrinks for the mnist28 GAN
    (g_width, d_width) and the MLP VAE (hidden): other archs (dcgan64, conv; the photos preset's)
    refuse keys that are not theirs unless they hold the default."""
    from genlab.train.gan import GanParams
    from genlab.train.vae import VaeParams

    return {"gan": {k: GanParams.model_fields[k].default for k in ("g_width", "d_width")},
            "vae": {"hidden": VaeParams.model_fields["hidden"].default}}


def run_stage(script: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `stages/<script>` as DVC would, in `cwd`, with this interpreter."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages" / script)],
        cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{script} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def stage_dir(tmp_path) -> Path:
    """A temp working folder with tiny params.yaml, for running one stage script."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    return tmp_path


def make_pipeline_repo(path: Path, params: dict | None = None) -> Path:
    """A real git + DVC repo holding this project's pipeline (dvc.yaml, stages, src) and
    `params` (default: tiny params) and the presets, committed."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("dvc.yaml", "stages", "src", "presets"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, path / name)
    shutil.rmtree(path / "src" / "genlab.egg-info", ignore_errors=True)
    (path / "params.yaml").write_text(yaml.safe_dump(params or tiny_params()))
    (path / ".gitignore").write_text("__pycache__/\nmlflow.db\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    git = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True, env=env)  # noqa: E731
    git("init", "-q", "-b", "main")
    dvc(path, "init", "-q")
    dvc(path, "config", "core.analytics", "false")
    git("add", "-A")
    git("commit", "-q", "-m", "pipeline")
    return path


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dvc")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    proc = subprocess.run([str(exe), *args], cwd=repo, capture_output=True, text=True, env=env, timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """A prepared tiny synthetic-digits set (600 train / 200 test, seed 0, 1x28x28) made by the
    library's `prepare_images`; read it with `genlab.data.arrays.load_split(digits_dir, split)`."""
    from genlab.data.images import PrepareImagesParams, prepare_images

    out = tmp_path_factory.mktemp("digits") / "images"
    prepare_images(PrepareImagesParams(source="synthetic-digits", n_train=600, n_test=200), out, seed=0)
    return out
