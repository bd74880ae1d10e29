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


# --- links and commands that work ---------------------------------------------------------------

LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)


def guide_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", markdown).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    """Every relative link or image of a markdown file whose file or #anchor does not exist."""
    text = path.read_text(encoding="utf-8")
    bad = []
    for m in LINK.finditer(FENCE.sub("", text)):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{path.name}: {target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            bad.append(f"{path.name}: {target}: no heading #{anchor} in {dest.name}")
    return bad


def test_relative_links_in_readme_and_docs_resolve():
    bad = [problem for path in guide_files() for problem in broken_links(path)]
    assert not bad, "\n".join(bad)


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The GAN's loop, in 2 parts\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md) [ok](other.md#the-gans-loop-in-2-parts) [web](https://example.org/x)\n"
                    "![gone](missing.png) [bad anchor](other.md#nope) [self](#page)\n# Page\n"
                    "```\n[in code](not-checked.md)\n```\n")
    assert broken_links(page) == ["page.md: missing.png: no such file",
                                  "page.md: other.md#nope: no heading #nope in other.md"]


def readme_commands() -> list[str]:
    """The shell commands of README.md's code blocks, continuation lines joined, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


# README commands that take seconds, need no network and no trained model: run them as written
QUICK_GENLAB = ("genlab --help", "genlab study list", "genlab preset list", "genlab preset show", "genlab preset check")


def test_readme_quick_genlab_commands_run():
    commands = [c for c in readme_commands() if c.startswith(QUICK_GENLAB)]
    assert {c.split()[1] for c in commands} >= {"--help", "study", "preset"}, commands
    for command in commands:
        import shlex
        import subprocess
        import sys

        proc = subprocess.run([sys.executable, "-m", "genlab.cli", *shlex.split(command)[1:]], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert proc.stdout.strip(), f"{command}: printed nothing"


def test_readme_experiments_are_valid_and_dvc_accepts_them(tmp_path):
    """Every `dvc exp run` / `genlab preset run` line of the README (not the --queue ones): its -S
    keys exist and their values pass check_params' checks, and `dvc exp run --dry` accepts its
    options in a real pipeline repo (up to check_params: a dry run needs the other stages' inputs)."""
    import shlex
    import subprocess
    import sys

    import yaml

    from conftest import dvc, make_pipeline_repo, tiny_params
    from genlab.check_params import check_params
    from genlab.presets import merge

    commands = [c for c in readme_commands()
                if c.startswith(("dvc exp run", "genlab preset run")) and "--queue" not in c]
    assert len(commands) >= 4, commands
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for command in commands:  # the overrides, checked as check_params checks params.yaml
        words = shlex.split(command)
        sets = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
        overrides: dict = {}
        for item in sets:
            key, value = item.split("=", 1)
            node = overrides
            for part in key.split(".")[:-1]:
                node = node.setdefault(part, {})
            node[key.split(".")[-1]] = yaml.safe_load(value)
        merged = tmp_path / "merged.yaml"
        merged.write_text(yaml.safe_dump(merge(params, overrides, source=f"README: {command}")))
        assert check_params(merged, sources=False) == [], command
    # through dvc (seconds each): the first of each kind, and one whose value holds a colon
    dry = {next(c for c in commands if c.startswith("dvc exp run")),
           next(c for c in commands if c.startswith("genlab preset run")),
           next(c for c in commands if re.search(r"-S \S+=\w+:", c))}
    from conftest import arch_neutral_widths

    # the photos preset's archs (dcgan64, conv) refuse tiny_params' shrunk mnist28 / MLP widths
    repo = make_pipeline_repo(tmp_path / "repo", tiny_params(tracking={"enabled": False}, **arch_neutral_widths()))
    for command in sorted(dry):
        words = shlex.split(command)
        if words[0] == "dvc":
            proc = dvc(repo, *words[1:], "--dry", "check_params", check=False)
        else:
            proc = subprocess.run([sys.executable, "-m", "genlab.cli", *words[1:], "--dry", "check_params"], cwd=repo,
                                  capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{command} --dry: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=repo, check=True)


def test_readme_is_a_short_guide_with_the_stage_table_up_front():
    import yaml

    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/<topic>.md"
    header = next(i for i, line in enumerate(lines) if line.startswith("| stage | params section | library |"))
    assert header < 100, f"the stage table starts at line {header + 1}; a newcomer needs it in the first 100"
    rows = set()
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        rows.add(line.split("|")[1].strip().strip("`"))
    stages = set(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])
    assert stages <= rows, f"stages missing from the README's stage table: {sorted(stages - rows)}"
