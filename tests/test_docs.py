"""One place for each fact (issue 29): comments say what and why, measurements live in docs/.

A measurement in a code comment, a docstring or a params.yaml comment goes stale the day a
default changes; the number belongs in docs/<topic>.md beside its command, commit and machine.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a result looks like in prose. Each pattern needs a digit, so units named in a docstring
# ("loss in nats/char", "(B, 64, 2s, 2s)") pass; a number with one of these does not.
MEASUREMENT_PATTERNS: dict[str, re.Pattern[str]] = {
    "a score": re.compile(
        r"\b(?:FID|KID|KL|-?ELBO|accuracy|frac_confident|confident)\b[^\w\n]{0,3}\d", re.IGNORECASE),
    "a throughput": re.compile(
        r"\d[\d,.]*\s*(?:img|images|chars?|characters|samples|steps|tokens|it)/s\b"),
    "a percentage": re.compile(r"\d\s*%"),
    "a loss per character": re.compile(r"\d\s*(?:nats?|bits?|bpc)\b"),
    "a timing": re.compile(
        r"\d\s+(?:s|ms|sec|secs|seconds?|min|mins|minutes?|h|hours?)\b"
        r"|\d(?:ms|sec|secs|seconds|min|mins|minutes|hours)\b"),
    "a speed ratio": re.compile(r"\d\s*[x×]\s*(?:faster|slower|as fast)|(?:faster|slower) by \d", re.IGNORECASE),
    "numbers compared": re.compile(r"\d[\d.,/]*\s*%?\s+(?:vs\.?|versus|against)\s+[\d.]", re.IGNORECASE),
}

# (file, text that may stay, why): settings and facts that look like measurements but are not.
ALLOWED: list[tuple[str, str, str]] = [
    ("src/genlab/models/vae.py", "-KL = 1/2 * sum_j", "the Gaussian KL in closed form: a formula"),
]


def measurement_hits(text: str) -> list[str]:
    """The measurement-like pieces of `text`, each as 'kind: match'."""
    return [f"{kind}: {m.group(0)!r}" for kind, rx in MEASUREMENT_PATTERNS.items() for m in rx.finditer(text)]


def python_prose(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and every module/class/function docstring line."""
    out = [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
           if tok.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                out += [(node.body[0].lineno + i, line) for i, line in enumerate(doc.splitlines())]
    return out


def yaml_comments(text: str) -> list[tuple[int, str]]:
    """(line, comment) of every `#` comment outside quotes in a YAML file."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        quote = None
        for j, ch in enumerate(line):
            if quote:
                quote = None if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#" and (j == 0 or line[j - 1].isspace()):
                out.append((i, line[j:]))
                break
    return out


def offences(rel: str, prose: list[tuple[int, str]]) -> list[str]:
    allowed = [text for f, text, _ in ALLOWED if f == rel]
    return [f"{rel}:{line}: {hit} in {text.strip()[:100]!r}"
            for line, text in prose if not any(a in text for a in allowed)
            for hit in measurement_hits(text)]


def test_params_yaml_comments_carry_no_measurements():
    bad = offences("params.yaml", yaml_comments((ROOT / "params.yaml").read_text()))
    assert not bad, "move these numbers to docs/<topic>.md and say what/why instead:\n" + "\n".join(bad)


def test_src_comments_and_docstrings_carry_no_measurements():
    bad = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        bad += offences(path.relative_to(ROOT).as_posix(), python_prose(path.read_text()))
    assert not bad, "move these numbers to docs/<topic>.md and say what/why instead:\n" + "\n".join(bad)


def test_presets_comments_carry_no_measurements():
    bad = []
    for path in sorted((ROOT / "presets").glob("*.yaml")):
        bad += offences(path.relative_to(ROOT).as_posix(), yaml_comments(path.read_text()))
    assert not bad, "move these numbers to docs/presets.md and say what/why instead:\n" + "\n".join(bad)


@pytest.mark.parametrize("text", [
    "# 93.9% vs 92.7% confident, FID 8.2 vs 11.1 after 6 epochs (fp32; benchmarks/gan_quality.py)",
    "trained at 1054 img/s in bf16 against 759 in fp32 (one thread)",
    "1,301 vs 1,254 img/s for the default GAN",
    "# cosine, 500 steps on pydoc: 7e-3 1.184 nats/char",
    "# 99.98% test accuracy, ~55 s fp32 at 1 thread",
    "# 2 threads on 2 busy cores ran 5-50x slower than 1",
    "# class KL 0.025-0.04",
    "# the whole stage took 3min",
])
def test_the_old_comments_are_caught(text):
    assert measurement_hits(text)


@pytest.mark.parametrize("text", [
    "# (B, 64, 2s, 2s) -> (B, 1, 4s, 4s)",
    '"""Mean next-character cross-entropy in nats/char; logits (B, T, V)."""',
    "# 500 x 32 x 64 = 1.0M characters per run",
    "# steps between resume checkpoints (.genlab/resume/train_gan.pt)",
    "# the onecycle peak (a lower peak was judged worse: docs/vae.md)",
])
def test_what_and_why_passes(text):
    assert not measurement_hits(text)
