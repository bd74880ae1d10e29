"""One model contract (models/contract.py): every model module has Config, build, save, load;
every config choice changes the network it builds; a key that does not apply is an error."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from genlab.checkpoint import CheckpointError
from genlab.models import char_rnn, classifier, gan, vae
from genlab.models.contract import ConfigError


def count(module: nn.Module, kind: type | tuple[type, ...]) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


# ------------------------------------------------------------------ the contract, round trip

SMALL = {
    gan: gan.Config(z_dim=8, g_width=8, d_width=8),
    vae: vae.Config(arch="mlp", hidden=16),
    classifier: classifier.Config(channels=[8], hidden=16),
    char_rnn: char_rnn.Config(vocab_size=12, hidden=16, layers=1, embed_dim=4),
}


def _out(module, model):
    torch.manual_seed(1)
    if module is gan:
        g = model[0].eval()
        return g(torch.randn(3, 8))
    if module is vae:
        return model.eval().decode(torch.randn(3, 2))
    if module is classifier:
        return model.eval()(torch.rand(3, 1, 28, 28))
    return model.eval()(torch.randint(0, 12, (2, 5)))[0]


@pytest.mark.parametrize("module", list(SMALL), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_build_save_load_round_trip(module, tmp_path):
    cfg = SMALL[module]
    assert type(cfg).from_dict(cfg.to_dict()) == cfg  # configs are plain dicts in checkpoints
    torch.manual_seed(0)
    model = module.build(cfg)
    path = module.save(tmp_path / "ck.pt", model, step=7)
    loaded = module.load(path)
    ck = torch.load(path, weights_only=True)  # no pickle needed to read it
    assert ck["kind"] == module.KIND and ck["step"] == 7 and ck["config"] == cfg.to_dict()
    net = loaded[0] if module is gan else loaded
    assert not net.training
    torch.testing.assert_close(_out(module, loaded), _out(module, model))


def test_load_refuses_another_kind_and_a_pickle(tmp_path):
    vae.save(tmp_path / "vae.pt", vae.build(vae.Config(hidden=8)))
    with pytest.raises(CheckpointError, match="vae"):
        classifier.load(tmp_path / "vae.pt")
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:  # a checkpoint carrying an arbitrary object: weights_only refuses it
        torch.save({"kind": "vae", "config": {}, "model": {}, "payload": pickle.dumps(object)} | {"x": object()}, fh)
    with pytest.raises(CheckpointError):
        vae.load(evil)


# ------------------------------------------------------------------ every choice takes effect

def test_gan_choices_change_the_networks():
    base = dict(z_dim=8, g_width=8, d_width=8)
    conv = (nn.Conv2d,)
    g3, d3 = gan.build(gan.Config(**base, g_layers=3, d_layers=3))
    g4, d4 = gan.build(gan.Config(**base, g_layers=4, d_layers=4, d_dropout=0.3))
    # the 4th layer maps 3x3 -> 1x1: fully connected (the 4x4 conv it stands for, see below)
    assert count(d4, conv) == count(d3, conv) and count(d4, nn.Linear) == count(d3, nn.Linear) + 1
    assert count(g4, nn.ConvTranspose2d) == count(g3, nn.ConvTranspose2d) + 1
    assert count(d3, nn.Dropout) == 0 and count(d4, (nn.Dropout, nn.Dropout2d)) >= 4
    # the report's D layout, and D's width
    _, dr = gan.build(gan.Config(**{**base, "d_width": None}, d_layout="report"))
    assert [m.out_channels for m in dr.modules() if isinstance(m, nn.Conv2d)][0] == 16
    # dcgan64: BatchNorm on or off, widths
    g_bn, d_bn = gan.build(gan.Config(arch="dcgan64", image_size=64, ngf=8, ndf=8))
    g_no, d_no = gan.build(gan.Config(arch="dcgan64", image_size=64, ngf=8, ndf=8, batchnorm=False))
    assert count(g_bn, nn.BatchNorm2d) > 0 and count(d_bn, nn.BatchNorm2d) > 0
    assert count(g_no, nn.BatchNorm2d) == 0 and count(d_no, nn.BatchNorm2d) == 0
    # mlp: fully connected, its widths
    g_mlp, d_mlp = gan.build(gan.Config(arch="mlp", g_hidden=32, d_hidden=16))
    assert count(g_mlp, conv + (nn.ConvTranspose2d,)) == 0
    assert sorted({m.out_features for m in d_mlp.modules() if isinstance(m, nn.Linear)}) == [1, 16]
    assert {m.out_features for m in g_mlp.modules() if isinstance(m, nn.Linear)} == {32, 28 * 28}


def test_gan_d_fully_connected_4th_layer_is_the_4x4_conv_it_replaces():
    # a 4x4 stride-2 pad-1 conv on a 3x3 map reads taps 1..3 of its kernel over the whole input
    # (taps 0 only ever see padding): the Linear on the flattened map with those taps is that conv
    torch.manual_seed(0)
    _, d = gan.build(gan.Config(z_dim=8, g_width=8, d_width=8, d_layers=4))
    lin = [m for m in d.features if isinstance(m, nn.Linear)]
    assert len(lin) == 1 and lin[0].in_features == 32 * 3 * 3 and lin[0].out_features == 64
    conv = nn.Conv2d(32, 64, 4, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.normal_()
        lin[0].weight.copy_(conv.weight[:, :, 1:, 1:].reshape(64, -1))
    x = torch.randn(5, 32, 3, 3)
    torch.testing.assert_close(lin[0](x.flatten(1)), conv(x).flatten(1), rtol=1e-4, atol=1e-4)
    assert d(torch.rand(5, 1, 28, 28) * 2 - 1).shape == (5,)


def test_gan_d_loads_a_checkpoint_with_the_4th_layer_as_a_conv():
    # what train_gan saved before the 4th layer became fully connected: a 4x4 conv where the
    # Flatten is now, then its BatchNorm2d; such a D loads into today's and computes the same
    torch.manual_seed(0)
    _, d_new = gan.build(gan.Config(z_dim=8, g_width=8, d_width=8, d_layers=4))
    _, d_old = gan.build(gan.Config(z_dim=8, g_width=8, d_width=8, d_layers=4))
    layers = list(d_old.features)
    k = next(i for i, m in enumerate(layers) if isinstance(m, nn.Flatten))
    layers[k:k + 3] = [nn.Conv2d(32, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64)]
    d_old.features = nn.Sequential(*layers)
    with torch.no_grad():
        for m in d_old.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(), m.running_var.uniform_(0.5, 2), m.weight.normal_()
    d_new.load_state_dict(d_old.state_dict())
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    torch.testing.assert_close(d_new.eval()(x), d_old.eval()(x), rtol=1e-4, atol=1e-5)


def test_gan_init_sets_the_weight_spread():
    torch.manual_seed(0)
    g_normal, _ = gan.build(gan.Config(z_dim=8, g_width=64))
    torch.manual_seed(0)
    g_xavier, _ = gan.build(gan.Config(z_dim=8, g_width=64, init="xavier"))
    w_normal = [m.weight for m in g_normal.modules() if isinstance(m, nn.ConvTranspose2d)][0]
    w_xavier = [m.weight for m in g_xavier.modules() if isinstance(m, nn.ConvTranspose2d)][0]
    assert w_normal.std().item() == pytest.approx(0.02, rel=0.05)  # N(0, 0.02), Radford et al.
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w_xavier)
    assert w_xavier.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)


def test_vae_classifier_and_char_rnn_choices_change_the_networks():
    widths = lambda m: [c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d)]  # noqa: E731
    assert widths(vae.build(vae.Config(arch="conv", conv_channels=(4, 6, 8), dense=10)))[:3] == [4, 6, 8]
    assert count(vae.build(vae.Config(arch="mlp", hidden=16)), nn.Conv2d) == 0
    assert widths(classifier.build(classifier.Config(channels=[4, 8, 12])))[:3] == [4, 8, 12]
    two = classifier.build(classifier.Config(channels=[4, 8], convs_per_block=2))
    assert len(widths(two)) == 4
    assert {m.p for m in classifier.build(classifier.Config(channels=[4], dropout=0.4)).modules()
            if isinstance(m, nn.Dropout)} == {0.4}
    for cell, kind in (("rnn", nn.RNN), ("lstm", nn.LSTM), ("gru", nn.GRU)):
        model = char_rnn.build(char_rnn.Config(vocab_size=10, cell=cell, layers=3, hidden=8, dropout=0.2))
        rnn = next(m for m in model.modules() if isinstance(m, kind))
        assert rnn.num_layers == 3 and rnn.hidden_size == 8 and rnn.dropout == 0.2
    assert count(char_rnn.build(char_rnn.Config(vocab_size=10, input="onehot")), nn.Embedding) == 0
    emb = next(m for m in char_rnn.build(char_rnn.Config(vocab_size=10, embed_dim=5)).modules()
               if isinstance(m, nn.Embedding))
    assert emb.embedding_dim == 5


# ------------------------------------------------------------------ keys that do not apply

@pytest.mark.parametrize("make, key", [
    (lambda: gan.Config(arch="dcgan64", image_size=64, g_width=16), "g_width"),
    (lambda: gan.Config(arch="mnist28", batchnorm=False), "batchnorm"),
    (lambda: gan.Config(arch="mlp", d_dropout=0.2), "d_dropout"),
    (lambda: vae.Config(arch="conv", hidden=32), "hidden"),
    (lambda: vae.Config(arch="mlp", dense=50), "dense"),
    (lambda: char_rnn.Config(input="onehot", embed_dim=8), "embed_dim"),
])
def test_a_key_for_another_choice_is_an_error(make, key):
    with pytest.raises(ConfigError, match=rf"^{key}: applies only to ") as err:
        make()
    assert err.value.key == key


def test_bad_values_name_the_field():
    for make, key in ((lambda: gan.Config(z_dim=0), "z_dim"), (lambda: gan.Config(arch="resnet"), "arch"),
                      (lambda: char_rnn.Config(dropout=1.0), "dropout"), (lambda: vae.Config(z_dim="2"), "z_dim")):
        with pytest.raises(ConfigError) as err:
            make()
        assert err.value.key == key
