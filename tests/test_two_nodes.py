"""Two nodes: two torchrun agents on 127.0.0.1, each started by the stage itself from its own
folder with `distributed.nnodes: 2`, its own `node_rank` and one process, meet through a c10d
rendezvous. One node's process is killed mid-run: every node ends with one line, no traceback;
started again, both resume from node 0's checkpoint and end with one process's weights."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, run_stage, tiny_params

pytestmark = pytest.mark.slow

# as tests/test_distributed.py: no dropout, so one process and two see the same global gradient
CHAR_RNN = {"dropout": 0.0, "max_steps": 12, "eval_interval": 6, "checkpoint_every": 4, "batch_size": 8}
ENV = {"OMP_NUM_THREADS": "1", "GENLAB_FP32": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(src: Path, dest: Path, distributed: dict) -> Path:
    dest.mkdir()
    shutil.copytree(src / "data", dest / "data")
    params = tiny_params(distributed=distributed, tracking={"enabled": False}, char_rnn=CHAR_RNN)
    (dest / "params.yaml").write_text(yaml.safe_dump(params))
    return dest


def _run_nodes(nodes: list[Path], envs: list[dict]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen([sys.executable, str(ROOT / "stages/train_char_rnn.py")], cwd=d, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **ENV, **e})
             for d, e in zip(nodes, envs)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def test_two_nodes_match_one_process_and_resume_after_a_killed_rank(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    run_stage("prepare_text.py", src)
    one = _node(src, tmp_path / "one", {"nproc": 1})
    run_stage("train_char_rnn.py", one, env=ENV)

    endpoint = f"127.0.0.1:{_free_port()}"
    nodes = [_node(src, tmp_path / f"node{k}", {"nproc": 1, "nnodes": 2, "node_rank": k, "rdzv_endpoint": endpoint})
             for k in (0, 1)]
    # node 1's process kills itself (SIGKILL) after step 9; node 0's checkpoint is at step 8
    killed = _run_nodes(nodes, [{}, {"GENLAB_STOP_AFTER_STEPS": "9"}])
    for k, proc in enumerate(killed):
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr, (k, proc.stderr)
    assert "killed by SIGKILL" in killed[1].stderr and "lost the processes of another node" in killed[0].stderr
    state = torch.load(nodes[0] / ".genlab/resume/train_char_rnn.pt", weights_only=True)
    assert state["step"] == 8 and state["key"]["nproc"] == 2
    assert not (nodes[1] / ".genlab/resume/train_char_rnn.pt").exists()  # rank 0, on node 0, writes

    again = _run_nodes(nodes, [{}, {}])
    for k, proc in enumerate(again):  # node 1 resumes from node 0's checkpoint, sent to it by rank 0
        assert proc.returncode == 0, (k, proc.stderr)
        assert "resuming from .genlab/resume/train_char_rnn.pt at epoch" in proc.stderr, (k, proc.stderr)
    a = torch.load(one / "models/char_rnn/checkpoint.pt", weights_only=True)["model"]
    b = torch.load(nodes[0] / "models/char_rnn/checkpoint.pt", weights_only=True)["model"]
    for key in a:  # fp32 round-off, as in tests/test_distributed.py
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=0, msg=key)
    assert not (nodes[1] / "models/char_rnn/checkpoint.pt").exists()
