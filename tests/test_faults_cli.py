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
