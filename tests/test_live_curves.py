"""Live curves: a training stage's plots/*.tsv and MLflow run grow while it trains, whole rows
only, and a resumed run continues the checkpoint's rows without repeating any."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import ROOT, run_stage, tiny_params
from genlab.tracking import LiveCurve

LOSSES = "plots/gan/losses.tsv"


def _gan_root(tmp_path: Path, digits_dir: Path, name: str, tracking: bool, **gan) -> Path:
    root = tmp_path / name
    shutil.copytree(digits_dir, root / "data" / "images")
    params = tiny_params(gan=gan, device="cpu", tracking={"enabled": tracking, "experiment": f"live-{name}"})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _rows(text: str) -> list[list[str]]:
    """The rows of a TSV read at any moment; fails on a torn (partial) line."""
    if not text:
        return []
    assert text.endswith("\n"), f"a torn row: {text[-80:]!r}"
    lines = [line.split("\t") for line in text.splitlines()]
    assert all(len(r) == len(lines[0]) for r in lines), "a row with a different number of fields"
    return lines


def test_curve_and_mlflow_run_grow_while_the_stage_trains(tmp_path, digits_dir):
    from mlflow.tracking import MlflowClient

    # 256 images / 32 = 8 steps an epoch, 50 epochs: far longer than the test watches it
    root = _gan_root(tmp_path, digits_dir, "live", True, epochs=50, log_every=2, checkpoint_every=1000,
                     sample_every=50)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "stages" / "train_gan.py")], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    seen_rows, run, points, system = 0, None, [], []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            path = root / LOSSES
            rows = _rows(path.read_text()) if path.exists() else []
            if rows:
                assert rows[0][:2] == ["step", "epoch"]
                steps = [int(r[0]) for r in rows[1:]]
                assert steps == sorted(set(steps)) and all(s % 2 == 0 for s in steps)
                seen_rows = len(steps)
            exp = client.get_experiment_by_name("live-live")
            if exp is not None:
                found = client.search_runs([exp.experiment_id], "tags.`genlab.stage` = 'train_gan'")
                run = found[0] if found else None
            if run is not None:
                points = client.get_metric_history(run.info.run_id, "g_loss")
                system = [k for k in client.get_run(run.info.run_id).data.metrics if k.startswith("system/")]
            if seen_rows >= 5 and len(points) >= 5 and system:
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"the stage ended before the test saw it train:\n{proc.stderr.read()[-2000:]}"
        assert seen_rows >= 5, "plots/gan/losses.tsv did not grow while training"
        assert run is not None and client.get_run(run.info.run_id).info.status == "RUNNING"
        assert len(points) >= 5 and [p.step for p in points] == sorted(p.step for p in points)
        assert system, "no MLflow system metrics while training"
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()


def test_resume_continues_the_live_curve_without_repeating_rows(tmp_path, digits_dir):
    # 8 steps an epoch, a row every step, a resume checkpoint every 4 steps
    root = _gan_root(tmp_path, digits_dir, "resume", False, epochs=3, log_every=1, checkpoint_every=4)
    proc = run_stage("train_gan.py", root, env={"OMP_NUM_THREADS": "1", "GENLAB_STOP_AFTER_STEPS": "6"}, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert [int(r[0]) for r in _rows((root / LOSSES).read_text())[1:]] == [1, 2, 3, 4, 5, 6]
    # killed again before the end: what is on disk is the live file alone (no final rewrite)
    proc = run_stage("train_gan.py", root, env={"OMP_NUM_THREADS": "1", "GENLAB_STOP_AFTER_STEPS": "7"}, check=False)
    assert proc.returncode == -signal.SIGKILL and "resuming" in proc.stderr
    # resumed at step 4: rows 5 and 6 of the killed run were dropped and made again, once
    assert [int(r[0]) for r in _rows((root / LOSSES).read_text())[1:]] == [1, 2, 3, 4, 5, 6, 7]


def test_live_curve_writes_whole_rows_and_resets(tmp_path):
    curve = LiveCurve(tmp_path / "c.tsv", name="c", columns=("step", "loss"))
    curve.reset([])
    assert (tmp_path / "c.tsv").read_text() == ""
    for step in (1, 2, 3):
        curve.append({"step": step, "epoch": 1, "loss": 1.0 / step})
    assert (tmp_path / "c.tsv").read_text() == "step\tloss\n1\t1\n2\t0.5\n3\t0.333333\n"
    curve.reset([{"step": 1, "loss": 1.0}])  # a resume from step 1
    curve.append({"step": 2, "loss": 0.25})
    assert (tmp_path / "c.tsv").read_text() == "step\tloss\n1\t1\n2\t0.25\n"
