"""The resume key is a reverse list: every setting of a trainer's params section must match
between a run and its resume, except the trainer's short RESUME_MAY_CHANGE list. A key added to
a params class is covered without anyone listing it."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from genlab.char_rnn_numpy import train as char_rnn_numpy
from genlab.params import resume_key
from genlab.train import char_rnn, classifier, gan, vae

TRAINERS = {
    "gan": (gan, gan.GanParams, gan.resume_key),
    "vae": (vae, vae.VaeParams, vae.resume_key),
    "char_rnn": (char_rnn, char_rnn.CharRNNParams, char_rnn.resume_key),
    "classifier": (classifier, classifier.ClassifierParams, classifier.resume_key),
    "char_rnn_numpy": (char_rnn_numpy, char_rnn_numpy.CharRNNNumpyParams, char_rnn_numpy.params_key),
}


def _with_new_key(params_cls: type) -> type:
    """`params_cls` plus a key nobody has heard of, as a contributor would add one."""
    return pydantic.create_model(f"Extended{params_cls.__name__}", __base__=params_cls,
                                 new_knob=(float, pydantic.Field(0.5, gt=0)))


@pytest.mark.parametrize("name", TRAINERS)
def test_a_new_params_key_is_in_the_resume_key_without_being_listed(name):
    module, params_cls, key_of = TRAINERS[name]
    extended = _with_new_key(params_cls)
    a, b = key_of(extended()), key_of(extended(new_knob=0.7))
    assert a["new_knob"] == 0.5 and b["new_knob"] == 0.7
    # everything but the may-change list is in the key (the run length joins it under a schedule)
    length = {"epochs", "max_steps"}
    assert set(a) - length == (set(params_cls.model_fields) | {"new_knob"}) - set(module.RESUME_MAY_CHANGE) - length


@pytest.mark.parametrize("name", TRAINERS)
def test_the_may_change_list_is_short_and_names_real_keys(name):
    module, params_cls, _ = TRAINERS[name]
    assert len(module.RESUME_MAY_CHANGE) <= 10
    assert set(module.RESUME_MAY_CHANGE) <= set(params_cls.model_fields)


def test_an_unknown_may_change_key_is_an_error():
    with pytest.raises(KeyError, match="no field lerning_rate"):
        resume_key(vae.VaeParams(), ["lerning_rate"])


def test_run_length_joins_the_key_when_a_schedule_depends_on_it():
    assert "epochs" not in gan.resume_key(gan.GanParams(schedule="constant", instance_noise=0.0))
    assert "epochs" in gan.resume_key(gan.GanParams(schedule="linear"))
    assert "epochs" in gan.resume_key(gan.GanParams(schedule="constant", instance_noise=0.1))
    assert "epochs" in vae.resume_key(vae.VaeParams(lr_schedule="cosine"))
    assert "epochs" not in vae.resume_key(vae.VaeParams(lr_schedule="constant"))
    assert "max_steps" in char_rnn.resume_key(char_rnn.CharRNNParams(lr_schedule="cosine"))
    assert "max_steps" not in char_rnn.resume_key(char_rnn.CharRNNParams(lr_schedule="constant"))
    assert "epochs" in classifier.resume_key(classifier.ClassifierParams())


def test_training_starts_fresh_when_a_new_key_differs_and_resumes_when_only_log_every_does(tmp_path, capfd):
    """Through the real loop: a VAE whose params class gained `new_knob`."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (32, 1, 28, 28)).astype(np.uint8)
    y = rng.integers(0, 10, 32).astype(np.int64)
    data = vae.VaeData(x, y, x[:8], y[:8], 10, "noise")
    extended = _with_new_key(vae.VaeParams)
    base = dict(hidden=8, z_dim=2, epochs=1, batch_size=16, lr_schedule="constant", log_every=1)
    resume = tmp_path / "resume.pt"
    vae.train_vae(extended(**base), data, seed=0, resume_path=resume)
    capfd.readouterr()
    vae.train_vae(extended(**{**base, "log_every": 2}), data, seed=0, resume_path=resume)
    assert "starting fresh" not in capfd.readouterr().err
    vae.train_vae(extended(**{**base, "log_every": 2, "new_knob": 0.7}), data, seed=0, resume_path=resume)
    assert "under other settings (vae.new_knob: 0.5 -> 0.7); starting fresh" in capfd.readouterr().err
