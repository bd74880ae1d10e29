"""prepare_text: ASCII folding, vocabulary round trip, sources, splits, determinism, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import run_stage, tiny_params
from genlab.data.encodings import TextEncodingError
from genlab.data.text import (
    PrepareTextParams, Vocab, build_corpus, fold_ascii, load_text_data, prepare_text, split_ids,
)
from genlab.params import ParamsError, validate_section


@pytest.mark.parametrize("raw, folded", [
    ("Café naïve Zürich", "Cafe naive Zurich"),            # accents stripped, case kept
    ("ÉCOLE", "ECOLE"),
    ("“quoted” — it’s", "quoted  its"),                     # other non-ASCII dropped
    ("ﬁne…", "fine..."),                                    # compatibility forms decomposed
    ("a\tb\r\nc\rd", "a b\nc\nd"),                          # tabs -> space, CR/CRLF -> LF
    ("bell\x07 nul\x00 emoji😀 ß", "bell nul emoji "),
    ("Hello, World! 42 {x: [1]} ~_~", "Hello, World! 42 {x: [1]} ~_~"),  # printable ASCII untouched
])
def test_fold_ascii(raw, folded):
    out = fold_ascii(raw)
    assert out == folded
    assert all(c == "\n" or 32 <= ord(c) <= 126 for c in out)


def test_vocab_round_trip_and_json():
    text = "To be, or not to be:\nthat is the question."
    vocab = Vocab.from_text(text)
    assert vocab.chars == sorted(set(text)) and vocab.size == len(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    again = Vocab.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again == vocab and again.encode(text).tolist() == ids.tolist()


def test_vocab_encode_names_every_unknown_char():
    vocab = Vocab.from_text("abc ")
    with pytest.raises(ValueError) as err:
        vocab.encode("a Zb!Z")
    assert "'Z'" in str(err.value) and "'!'" in str(err.value)
    with pytest.raises(ValueError):
        vocab.decode([0, vocab.size])


def test_split_sizes():
    ids = np.arange(1000)
    train, val = split_ids(ids, 0.1)
    assert len(train) == 900 and len(val) == 100
    assert train[-1] == 899 and val[0] == 900  # first part train, last part val


def test_pydoc_source_prepare_and_load(tmp_path):
    cfg = PrepareTextParams(source="pydoc", max_chars=20_000, val_fraction=0.2)
    meta = prepare_text(cfg, tmp_path)
    train, val, vocab = load_text_data(tmp_path)
    assert meta["n_chars"] == 20_000 and len(train) == 16_000 and len(val) == 4_000
    assert train.dtype == np.int64 and val.dtype == np.int64
    corpus = (tmp_path / "corpus.txt").read_text()
    assert vocab.decode(np.concatenate([train, val])) == corpus
    assert "assert" in corpus and vocab.size > 60
    assert set(json.loads((tmp_path / "meta.json").read_text())["sha256"]) == {"corpus.txt", "vocab.json", "train.npy", "val.npy"}


def test_pydoc_full_corpus_is_the_embedded_default():
    text = build_corpus(PrepareTextParams())
    assert 400_000 < len(text) < 520_000


def test_path_source_folds_unicode(tmp_path):
    src = tmp_path / "novel.txt"
    src.write_text("Él dijo: «hola», naïve café.\n" * 100, encoding="utf-8")
    prepare_text(PrepareTextParams(source=f"path:{src}", min_chars=100), tmp_path / "out")
    corpus = (tmp_path / "out" / "corpus.txt").read_text()
    assert corpus.startswith("El dijo: hola, naive cafe.\n")
    _, _, vocab = load_text_data(tmp_path / "out")
    assert all(ord(c) < 128 for c in vocab.chars)


# the seed's novels: Windows-1252, curly quotes as bytes 0x93/0x94, apostrophes 0x92, dashes 0x97
SEED_LINE = "\u201cWell,\u201d said Harry, \u201cI don\u2019t know \u2014 maybe the caf\u00e9 \u00e0 Pr\u00e9-au-Lard.\u201d\n"


def test_cp1252_source_prepares_and_folds_to_ascii(tmp_path):
    src = tmp_path / "philosophers_stone.txt"
    raw = SEED_LINE.encode("cp1252") * 40
    assert b"\x93" in raw
    src.write_bytes(raw)
    meta = prepare_text(PrepareTextParams(source=f"path:{src}", min_chars=100), tmp_path / "auto")
    assert meta["encoding"] == "cp1252"
    assert json.loads((tmp_path / "auto" / "meta.json").read_text())["encoding"] == "cp1252"
    corpus = (tmp_path / "auto" / "corpus.txt").read_text()
    # the same folding as the UTF-8 text: accents off (not dropped, not a replacement character)
    assert corpus == fold_ascii(SEED_LINE * 40)
    assert corpus.startswith("Well, said Harry, I dont know  maybe the cafe a Pre-au-Lard.\n")
    # named explicitly, the same result; named wrongly, one line naming the byte and the fix
    assert prepare_text(PrepareTextParams(source=f"path:{src}", min_chars=100, encoding="cp1252"),
                        tmp_path / "named")["encoding"] == "cp1252"
    assert (tmp_path / "named" / "corpus.txt").read_text() == corpus
    with pytest.raises(TextEncodingError, match=r"is not utf-8 text \(byte 0x93 at offset 0\); try prepare_text.encoding=auto or cp1252$"):
        build_corpus(PrepareTextParams(source=f"path:{src}", min_chars=100, encoding="utf-8"))
    # UTF-8 stays UTF-8
    (tmp_path / "utf8.txt").write_text(SEED_LINE * 40, encoding="utf-8")
    assert prepare_text(PrepareTextParams(source=f"path:{tmp_path / 'utf8.txt'}", min_chars=100),
                        tmp_path / "u")["encoding"] == "utf-8"


def test_binary_source_is_refused_in_one_line(tmp_path):
    png = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(png)
    with pytest.raises(TextEncodingError) as info:
        build_corpus(PrepareTextParams(source=f"path:{png}"))
    assert str(info.value) == f"text source 'path:{png}': {png} is not text (it holds NUL bytes)"
    noise = tmp_path / "noise.bin"  # no NUL byte: still no encoding explains it
    noise.write_bytes(bytes(b for b in np.random.default_rng(1).integers(1, 256, 20000, dtype=np.uint8)))
    with pytest.raises(TextEncodingError, match=r"noise.bin is not text") as info:
        build_corpus(PrepareTextParams(source=f"path:{noise}"))
    assert "\n" not in str(info.value)
    with pytest.raises(ParamsError, match="prepare_text.encoding: .*unknown text encoding 'klingon'"):
        validate_section({"encoding": "klingon"}, "prepare_text", PrepareTextParams)


def test_too_short_corpus_is_an_error_and_writes_nothing(tmp_path):
    src = tmp_path / "short.txt"
    src.write_text("only a few words\n")
    with pytest.raises(ValueError, match="min_chars=1000"):
        prepare_text(PrepareTextParams(source=f"path:{src}"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty.txt").write_text("€€€")  # folds to nothing
    with pytest.raises(ValueError, match="0 characters"):
        build_corpus(PrepareTextParams(source=f"path:{tmp_path / 'empty.txt'}"))


def test_missing_path_and_unknown_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        build_corpus(PrepareTextParams(source=f"path:{tmp_path / 'nope.txt'}"))
    with pytest.raises(ParamsError, match="prepare_text.source: .*unknown text source 'gutenberg'"):
        validate_section({"source": "gutenberg"}, "prepare_text", PrepareTextParams)
    with pytest.raises(ParamsError, match="prepare_text.val_fraction: must be < 1"):
        validate_section({"val_fraction": 1.5}, "prepare_text", PrepareTextParams)


@pytest.mark.slow
def test_stage_is_deterministic_and_fails_cleanly(stage_dir):
    # MLflow off: each run would spend seconds importing it and opening the store
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(tiny_params(tracking={"enabled": False})))
    run_stage("prepare_text.py", stage_dir)
    first = {p.name: p.read_bytes() for p in (stage_dir / "data" / "text").iterdir()}
    run_stage("prepare_text.py", stage_dir)
    second = {p.name: p.read_bytes() for p in (stage_dir / "data" / "text").iterdir()}
    assert first == second and {"corpus.txt", "vocab.json", "train.npy", "val.npy", "meta.json"} <= set(first)

    (stage_dir / "tiny.txt").write_text("too short")
    params = tiny_params(prepare_text={"source": "path:tiny.txt"}, tracking={"enabled": False})
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage("prepare_text.py", stage_dir, check=False)
    assert proc.returncode != 0 and "min_chars" in proc.stderr
    assert {p.name: p.read_bytes() for p in (stage_dir / "data" / "text").iterdir()} == first
