"""The run report: one Markdown file (and its HTML rendering) with every figure and metric."""

from __future__ import annotations

import html
import json
from pathlib import Path

from genlab.params import StrictModel, flatten


class ReportParams(StrictModel):
    title: str = "genlab run report"


# (folder under reports/, heading, what it shows)
SECTIONS = [
    ("data", "Data", "samples of the prepared training images"),
    ("classifier", "Classifier (the judge)", "confusion matrix on the real test set"),
    ("gan", "DCGAN training", "fixed-noise samples during training"),
    ("vae", "VAE training", "reconstructions, latent manifold and latent scatter"),
    ("generate", "Samples", "random samples from each generator"),
    ("evaluate", "Evaluation", "class histograms and 30 labelled samples per generator and for real data"),
    ("render", "Traversals and GAN vs VAE", "latent traversals (each row: one point, then the steps towards the next)"),
    ("interpret", "What the discriminator learned; latent arithmetic",
     "Grad-CAM, guided backprop and guided Grad-CAM on D for real and generated images (targets real and fake); "
     "mean(A) - mean(B) + mean(C) in the GAN's and the VAE's latent space"),
    ("char_rnn", "Char-RNN (torch)", "generated text"),
    ("char_rnn_numpy", "Char-RNN (NumPy, from scratch)", "generated text and optimizer comparison"),
]
FIGURES = (".png", ".gif", ".svg", ".jpg")


def _metrics_table(metrics_dir: Path) -> list[str]:
    rows = []
    for path in sorted(metrics_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        for key, value in flatten(data).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append(f"| {path.stem} | `{key}` | {value:.6g} |")
    if not rows:
        return ["_no metrics yet_"]
    return ["| stage | metric | value |", "|---|---|---|", *rows]


def _evaluate_table(metrics_dir: Path) -> list[str]:
    path = metrics_dir / "evaluate.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    blocks = {k: v for k, v in data.items() if isinstance(v, dict)}
    if not blocks:
        return []
    keys = list(dict.fromkeys(k for block in blocks.values() for k in block))  # every row's keys, in order
    out = ["| images | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(f"{v.get(k, float('nan')):.4g}" for k in keys) + " |" for name, v in blocks.items()]
    return out


def _judges_lines(reports_dir: Path) -> list[str]:
    """Which judges ran on the generated images and how, which were skipped and why."""
    path = reports_dir / "evaluate" / "judges.json"
    if not path.exists():
        return []
    judges = json.loads(path.read_text())
    return [f"- **{name}**: {how}" for name, how in judges.items()] + [""]


def _interpret_tables(metrics_dir: Path) -> list[str]:
    """The linear probe (accuracy by features and label count) and the arithmetic's transfer."""
    path = metrics_dir / "interpret.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    out: list[str] = []
    probe = data.get("probe") or {}
    if probe:
        cols = list(next(iter(probe.values())))
        out += ["Linear probe on D's features (every layer max-pooled to 4x4, concatenated; logistic regression), "
                "test accuracy by number of labelled training images, against the same probe on a randomly "
                "initialised D and on raw pixels:", "",
                "| features | " + " | ".join(f"{c} labels" for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
        out += [f"| {row} | " + " | ".join(f"{accs.get(c, float('nan')):.4f}" for c in cols) + " |"
                for row, accs in probe.items()]
        out += [""]
    arith = data.get("arithmetic") or {}
    rows = [(model, attr) for model, block in arith.items() for attr in sorted({k.split("/")[0] for k in block})]
    if rows:
        out += ["Latent arithmetic: the attribute of the targets (C) before and after adding mean(A) - mean(B); "
                "`transfer` = the change over the gap between A and B; `class kept` by the judge:", "",
                "| model | attribute | A (high) | B (low) | C before | C after | transfer | class kept |",
                "|---|---|---|---|---|---|---|---|"]
        for model, a in rows:
            b = arith[model]
            out.append(f"| {model} | {a} | {b[f'{a}/high_mean']:.4g} | {b[f'{a}/low_mean']:.4g} | "
                       f"{b[f'{a}/before']:.4g} | {b[f'{a}/after']:.4g} | {b[f'{a}/transfer']:.3g} | "
                       f"{b[f'{a}/class_kept']:.3g} |")
        out += [""]
    return out


def build_report(reports_dir: Path, metrics_dir: Path, title: str = "genlab run report") -> str:
    """Markdown for `reports/index.md`; figure links are relative to `reports_dir`."""
    lines = [f"# {title}", ""]
    ev = _evaluate_table(metrics_dir)
    if ev:
        lines += ["## Generated images judged (classifier and label-free judges)", "",
                  "`fid`/`kid`: classifier-feature distances to the real test set (lower is better); "
                  "`kl_uniform`: KL(class histogram ‖ uniform) in nats; `frac_confident`: share of images "
                  "classified with confidence ≥ 0.9; `real` is a held-out real split judged the same way. "
                  "Label-free (docs/judges.md): `c2st_acc` two-sample-test accuracy (0.5 best), `precision` / "
                  "`recall` (1 best), `memorisation` share of samples nearer a training image than real held-out "
                  "images are (about 0.05 when nothing is copied), `memorisation_ratio` of median distances.", "",
                  *_judges_lines(reports_dir), *ev, ""]
    interp = _interpret_tables(metrics_dir)
    if interp:
        lines += ["## Linear probe on D and latent arithmetic", "", *interp]
    for folder, heading, what in SECTIONS:
        d = reports_dir / folder
        if not d.is_dir():
            continue
        figures = sorted(p for p in d.rglob("*") if p.suffix in FIGURES)
        texts = sorted(p for p in d.rglob("*.txt"))
        videos = sorted(d.rglob("*.mp4"))  # train_gan's progress video: a link (the page embeds images only)
        if not figures and not texts and not videos:
            continue
        lines += [f"## {heading}", "", f"_{what}_", ""]
        for fig in figures:
            rel = fig.relative_to(reports_dir).as_posix()
            lines += [f"**{fig.stem}**", "", f"![{fig.stem}]({rel})", ""]
        for video in videos:
            lines += [f"**[{video.name}]({video.relative_to(reports_dir).as_posix()})**", ""]
        for txt in texts:
            rel = txt.relative_to(reports_dir).as_posix()
            body = txt.read_text(errors="replace")
            excerpt = body[:1200] + ("\n…" if len(body) > 1200 else "")
            lines += [f"**[{txt.name}]({rel})**", "", "```text", excerpt.replace("```", "'''"), "```", ""]
    lines += ["## All metrics", "", *_metrics_table(metrics_dir), ""]
    return "\n".join(lines)


def markdown_to_html(md: str, title: str = "genlab run report") -> str:
    """A small renderer for the report's own subset of Markdown (headings, images, tables, code)."""
    out, in_code, table = [], False, []

    def flush_table() -> None:
        if table:
            out.append("<table>")
            for i, row in enumerate(table):
                if set(row.replace("|", "").strip()) <= {"-"}:
                    continue
                cells = [c.strip() for c in row.strip().strip("|").split("|")]
                tag = "th" if i == 0 else "td"
                out.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            out.append("</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            out.append(f'<p><img src="{html.escape(src.rstrip(")"))}" alt="{html.escape(alt)}" style="max-width:100%"></p>')
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    flush_table()
    style = "body{font-family:sans-serif;max-width:1200px;margin:auto}td,th{border:1px solid #ccc;padding:2px 6px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n"


def _inline(text: str) -> str:
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*\[(.+?)\]\((.+?)\)\*\*", r'<b><a href="\2">\1</a></b>', text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    return re.sub(r"_(.+?)_$", r"<i>\1</i>", text)
