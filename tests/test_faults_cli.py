"""Fault suite, the genlab command: an output path it cannot write is one line and exit 2,
with nothing left behind (issue 17 finding 5)."""

from __future__ import annotations

import pytest

from genlab.cli import main
from genlab.models import gan

pytestmark = pytest.mark.faults


@pytest.fixture
def tiny_gan(tmp_path):
    """A real (untrained) GAN checkpoint written through the model contract."""
    cfg = gan.Config(arch="mlp", z_dim=4, g_hidden=16, d_hidden=16)
    return gan.save(tmp_path / "gan.pt", gan.build(cfg))


@pytest.mark.parametrize("out", ["a-file/grid.png", "a-file/deeper/samples.npy"])
def test_sample_to_a_path_under_a_file_is_one_line(tmp_path, tiny_gan, capsys, out):
    (tmp_path / "a-file").write_text("a file, not a folder")
    code = main(["sample", "--model", str(tiny_gan), "--kind", "gan", "--n", "4", "--out", str(tmp_path / out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("genlab sample: error: ") and "a-file" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "gan.pt"]


@pytest.mark.parametrize("command", ["sample", "traverse"])
def test_a_pickle_payload_is_refused_without_torchs_hint_to_load_it_unsafely(tmp_path, tiny_gan, capsys, command):
    """torch's message says that loading again with weights_only=False 'will likely succeed':
    the one thing a user must not do with a file from elsewhere (issue 25 finding 5)."""
    from serve_helpers import tampered_checkpoint

    marker = tmp_path / "code-ran"
    evil = tampered_checkpoint(tiny_gan, tmp_path / "evil/gan.pt", marker)
    code = main([command, "--model", str(evil), "--kind", "gan", "--out", str(tmp_path / "out.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not marker.exists()
    assert len(err) == 1 and "pickled Python objects (posix.mkdir), which genlab never loads" in err[0], err
    assert "weights_only" not in err[0] and "False" not in err[0], err


# --- bounds and messages of the genlab command (issue 25 findings 4 and 5) ----------------------

def test_sample_n_is_capped_with_the_generate_stages_words(tmp_path, tiny_gan, capsys):
    import yaml

    from conftest import tiny_params
    from genlab.check_params import check_params

    code = main(["sample", "--model", str(tiny_gan), "--kind", "gan", "--n", "100000000", "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["genlab sample: error: --n: must be <= 1000000, got 100000000"], err
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(generate={"n_samples": 100000000})))
    assert check_params(tmp_path / "params.yaml", base=tmp_path) == [
        "params.yaml: generate.n_samples: must be <= 1000000, got 100000000"]  # the same words


def test_sample_from_a_truncated_checkpoint_names_the_dvc_fix(tmp_path, tiny_gan, capsys, monkeypatch):
    import shutil

    from conftest import ROOT

    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    ckpt = tmp_path / "models/gan/checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(tiny_gan.read_bytes()[:200])
    monkeypatch.chdir(tmp_path)
    code = main(["sample", "--n", "4", "--out", "s.png"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("genlab sample: error: checkpoint models/gan/checkpoint.pt is corrupted")
    assert err[0].endswith("; restore it with `dvc checkout models/gan` or rebuild it with `dvc repro -f train_gan`")


@pytest.mark.parametrize("out", ["/proc/nope.png", "DIR"])
def test_an_unwritable_out_names_the_users_path_not_a_temporary_file(tmp_path, tiny_gan, capsys, out):
    if out == "DIR":
        out = str(tmp_path / "a-folder")
        (tmp_path / "a-folder").mkdir()
    code = main(["sample", "--model", str(tiny_gan), "--kind", "gan", "--n", "4", "--out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"'{out}'" in err[0] and ".tmp" not in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["gan.pt", *(["a-folder"] if "a-folder" in out else [])])


def test_evaluate_into_a_closed_pipe_exits_quietly(tmp_path):
    """`genlab evaluate x.npy | head`: 'error: [Errno 32] Broken pipe' and exit 2 before."""
    import subprocess
    import sys

    import numpy as np
    from serve_helpers import make_checkpoints

    paths = make_checkpoints(tmp_path / "models")
    images = np.random.default_rng(0).integers(0, 256, (8, 1, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", images)
    cmd = [sys.executable, "-m", "genlab.cli", "evaluate", str(tmp_path / "x.npy"), "--classifier",
           str(paths["classifier"]), "--reference", str(tmp_path / "x.npy"), "--device", "cpu",
           "--kid-subset-size", "4", "--kid-subsets", "2"]
    read, write = __import__("os").pipe()
    __import__("os").close(read)  # the reader (head) is gone before the first line
    proc = subprocess.run(cmd, stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
    __import__("os").close(write)
    assert proc.returncode == 141 and proc.stderr.strip() == "", proc.stderr


def test_serve_on_a_busy_port_is_one_line_and_never_says_serving(tmp_path):
    import socket
    import subprocess
    import sys

    from serve_helpers import make_checkpoints

    make_checkpoints(tmp_path / "models")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "genlab.cli", "serve", "--models", str(tmp_path / "models"), "--port",
                               str(port)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"genlab serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"], proc.stderr


def test_a_wrong_method_is_an_error_object_like_every_other_error(tmp_path):
    """A 405 answered FastAPI's {"detail": ...}; every other error is {"error": ...}."""
    import json
    import urllib.error
    import urllib.request

    from serve_helpers import free_port, make_checkpoints, start_genlab_serve, stop

    make_checkpoints(tmp_path / "models")
    port = free_port()
    proc = start_genlab_serve(tmp_path / "models", port, tmp_path / "serve.log")
    try:
        for method, path, status in (("POST", "/api/sample?seed=0", 405), ("GET", "/no/such/page", 404)):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            assert err.value.code == status
            body = json.loads(err.value.read())
            assert set(body) == {"error"} and body["error"], body
            if status == 405:
                assert err.value.headers["allow"] == "GET"
    finally:
        stop(proc)
