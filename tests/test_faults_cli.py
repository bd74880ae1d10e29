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
