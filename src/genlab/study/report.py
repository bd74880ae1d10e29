"""A study's comparison page: collect the finished candidates from their DVC experiments (and
their MLflow runs by tag), then write ``reports/studies/<study>/index.md`` and ``index.html``
with a verdict line, a metrics table, sample grids side by side, overlaid curves and texts.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genlab.runtime import log, save_figure, write_text
from genlab.study.experiments import Experiment, experiments, get_key, head
from genlab.study.spec import STUDY_SEPARATOR, Candidate, FigureSpec, MetricSpec, StudySpec


@dataclass
class Result:
    """What one finished candidate produced."""

    candidate: Candidate
    experiment: Experiment
    params: dict[str, Any]                       # the varied keys as the experiment's params.yaml holds them
    metrics: dict[str, float | None]             # metric label -> value
    curves: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # plots path -> rows
    files: dict[str, bytes] = field(default_factory=dict)  # path -> content (images, texts)
    grids: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)  # figure index -> (epoch, png)
    mlflow_run: str | None = None                # the parent MLflow run of this experiment


def _parse_tsv(text: str) -> list[dict[str, float]]:
    rows = []
    for row in csv.DictReader(io.StringIO(text), delimiter="\t"):
        parsed = {}
        for k, v in row.items():
            try:
                parsed[k] = float(v)
            except (TypeError, ValueError):
                continue
        rows.append(parsed)
    return rows


def _metric(spec: MetricSpec, fs: Any, cache: dict[str, Any]) -> float | None:
    """One metric of one experiment, or None when its file or key is missing."""
    path = spec.file or spec.plot
    if path not in cache:
        try:
            text = fs.read_text(path)
            cache[path] = json.loads(text) if spec.file else _parse_tsv(text)
        except (FileNotFoundError, OSError, ValueError):
            cache[path] = None
    data = cache[path]
    if data is None:
        return None
    if spec.file:
        try:
            value = get_key(data, spec.key)  # gan.fid -> data["gan"]["fid"]; "gan/g_loss" is one key
        except KeyError:
            return None
        return float(value) if isinstance(value, (int, float)) else None
    values = np.array([r[spec.column] for r in data[spec.skip:] if spec.column in r], dtype=float)
    if values.size == 0:
        return None
    return float({"last": values[-1], "min": values.min(), "max": values.max(), "mean": values.mean(),
                  "std": values.std()}[spec.stat])


def _grid_epochs(fig: FigureSpec, fs: Any) -> list[int]:
    """The epochs of a grids figure this experiment has (see FigureSpec.epochs)."""
    import re

    folder, pattern = fig.path.rsplit("/", 1) if "/" in fig.path else (".", fig.path)
    regex = re.compile("^" + re.sub(r"\\\{epoch[^}]*\\\}", r"(\\d+)", re.escape(pattern)) + "$")
    try:
        names = [Path(p).name for p in fs.ls(folder, detail=False)]
    except (FileNotFoundError, OSError):
        return []
    have = sorted({int(m.group(1)) for n in names if (m := regex.match(n))})
    chosen = [e for e in (fig.epochs or []) if e in have]
    if chosen or not have:
        return chosen
    if len(have) <= fig.max_columns:
        return have
    idx = np.linspace(0, len(have) - 1, fig.max_columns).round().astype(int)
    return sorted({have[i] for i in idx})


def collect(root: Path, candidates: list[Candidate], spec: StudySpec) -> tuple[list[Result], list[Candidate]]:
    """(results of the finished candidates, candidates with no finished experiment).

    A candidate's experiment is the one on the current commit, else its newest on any commit.
    Files come through DVC (git-tracked or from the DVC cache) at the experiment's commit.
    """
    from dvc.api import DVCFileSystem

    base = head(root)
    study = candidates[0].study if candidates else ""
    by_name: dict[str, Experiment] = {}
    for exp in experiments(root, prefix=study + STUDY_SEPARATOR):
        old = by_name.get(exp.name)
        rank = (exp.baseline == base, exp.timestamp)
        if old is None or rank > (old.baseline == base, old.timestamp):
            by_name[exp.name] = exp
    results, missing = [], []
    for cand in candidates:
        exp = by_name.get(cand.exp_name)
        if exp is None:
            missing.append(cand)
            continue
        fs = DVCFileSystem(str(root), rev=exp.rev)
        import yaml

        params = yaml.safe_load(fs.read_text("params.yaml")) or {}
        cache: dict[str, Any] = {}
        res = Result(cand, exp, {k: _get(params, k) for k in cand.varied},
                     {m.label: _metric(m, fs, cache) for m in spec.metrics})
        for i, fig in enumerate(spec.figures):
            if fig.kind == "grids":
                res.grids[i] = [(e, fs.read_bytes(fig.path.format(epoch=e))) for e in _grid_epochs(fig, fs)]
            elif fig.kind in ("image", "text"):
                try:
                    res.files[fig.path] = fs.read_bytes(fig.path)
                except (FileNotFoundError, OSError):
                    pass
            elif fig.kind == "curves" and fig.plot not in res.curves:
                try:
                    res.curves[fig.plot] = _parse_tsv(fs.read_text(fig.plot))
                except (FileNotFoundError, OSError):
                    res.curves[fig.plot] = []
        results.append(res)
    return results, missing


def _get(params: dict[str, Any], key: str) -> Any:
    try:
        return get_key(params, key)
    except KeyError:
        return None


def attach_mlflow_runs(results: list[Result], study: str, uri: str) -> int:
    """Set each result's parent MLflow run (tagged genlab.study / genlab.candidate by
    genlab.tracking); returns how many tagged runs the store holds. A store that cannot be
    read is a warning: the page is built from DVC alone."""
    from genlab.tracking import CANDIDATE_TAG, STUDY_TAG

    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids, filter_string=f"tags.`{STUDY_TAG}` = '{study}'", max_results=5000) if ids else []
    except Exception as exc:  # noqa: BLE001 - the page does not depend on MLflow
        log(f"warning: MLflow runs not read ({type(exc).__name__}: {exc})")
        return 0
    parents: dict[str, Any] = {}
    for run in runs:
        if "mlflow.parentRunId" in run.data.tags:
            continue
        cand = run.data.tags.get(CANDIDATE_TAG)
        if cand and (cand not in parents or run.info.start_time > parents[cand].info.start_time):
            parents[cand] = run
    for res in results:
        run = parents.get(res.candidate.name)
        res.mlflow_run = run.info.run_id if run else None
    return len(runs)


# --- verdict -----------------------------------------------------------------------------------

def _fmt(value: float | None, fmt: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _show(value: Any) -> str:
    """A params value as params.yaml writes it (null, true)."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _ranks(values: np.ndarray) -> np.ndarray:
    order = values.argsort()
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (no ties correction: a handful of candidates)."""
    if len(x) < 3:
        return None
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def verdict(results: list[Result], spec: StudySpec) -> list[str]:
    """The verdict line (best and worst candidate by the first metric with a goal) and, for
    every `std` metric, its rank correlation with that metric: computed, never copied."""
    judge = next(m for m in spec.metrics if m.goal)
    scored = [(r, r.metrics[judge.label]) for r in results if r.metrics.get(judge.label) is not None
              and not math.isnan(r.metrics[judge.label])]
    if not scored:
        return [f"**Verdict:** no candidate has {judge.label} yet."]
    scored.sort(key=lambda t: t[1], reverse=judge.goal == "max")
    best, worst = scored[0], scored[-1]
    line = f"**Verdict:** best: {best[0].candidate.label} ({judge.label} {_fmt(best[1], judge.fmt)}"
    if len(scored) > 1:
        line += f" vs {_fmt(worst[1], judge.fmt)} for {worst[0].candidate.label}, the worst of {len(scored)})"
    else:
        line += ", the only finished candidate)"
    lines = [line]
    ranking = " > ".join(f"{r.candidate.label} ({_fmt(v, judge.fmt)})" for r, v in scored)
    lines.append(f"Ranking by {judge.label} ({'lower' if judge.goal == 'min' else 'higher'} is better): {ranking}.")
    for m in spec.metrics:
        if m.stat != "std" or not m.plot:
            continue
        pairs = [(r.metrics[m.label], v) for r, v in scored if r.metrics.get(m.label) is not None]
        rho = spearman([p[0] for p in pairs], [p[1] for p in pairs])
        if rho is not None:
            better = -rho if judge.goal == "min" else rho
            lines.append(f"Spearman ρ({m.label}, {judge.label}) = {rho:+.2f} over {len(pairs)} candidates: "
                         f"higher {m.label} goes with {'better' if better > 0 else 'worse'} {judge.label}.")
    return lines


# --- figures -----------------------------------------------------------------------------------

def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def grids_figure(results: list[Result], index: int, fig: FigureSpec, out: Path) -> Path | None:
    """One row per candidate, one column per epoch: the candidates' sample grids side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(res, res.grids.get(index, [])) for res in results]
    cols = max((len(r[1]) for r in rows), default=0)
    if cols == 0:
        return None
    f, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.3 * len(rows)), squeeze=False)
    for i, (res, imgs) in enumerate(rows):
        for j in range(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(imgs):
                epoch, data = imgs[j]
                ax.imshow(_decode_png(data))
                ax.set_title(f"epoch {epoch}", fontsize=8)
            else:
                ax.axis("off")
            if j == 0:
                ax.set_ylabel(res.candidate.label, fontsize=8)
    f.suptitle(fig.title, fontsize=10)
    f.tight_layout()
    return save_figure(f, out, dpi=110)


def images_figure(results: list[Result], fig: FigureSpec, out: Path) -> Path | None:
    """One image per candidate, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have = [(r, r.files[fig.path]) for r in results if fig.path in r.files]
    if not have:
        return None
    f, axes = plt.subplots(1, len(have), figsize=(3 * len(have), 3.3), squeeze=False)
    for ax, (res, data) in zip(axes[0], have):
        ax.imshow(_decode_png(data))
        ax.set_title(res.candidate.label, fontsize=8)
        ax.axis("off")
    f.suptitle(fig.title, fontsize=10)
    f.tight_layout()
    return save_figure(f, out, dpi=110)


def curves_figure(results: list[Result], fig: FigureSpec, out: Path) -> Path | None:
    """One panel per y column, one line per candidate (moving average of `smooth` rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(res.curves.get(fig.plot) for res in results):
        return None
    f, axes = plt.subplots(1, len(fig.y), figsize=(4.5 * len(fig.y), 3.4), squeeze=False)
    # many candidates: 10 colours x 2 line styles keep every line apart; the legend goes beside the panels
    colours = plt.get_cmap("tab10").colors
    for ax, col in zip(axes[0], fig.y):
        for k, res in enumerate(results):
            rows = [r for r in res.curves.get(fig.plot, []) if col in r and fig.x in r]
            if not rows:
                continue
            x = np.array([r[fig.x] for r in rows])
            y = np.array([r[col] for r in rows])
            if fig.smooth > 1 and len(y) >= fig.smooth:
                y = np.convolve(y, np.ones(fig.smooth) / fig.smooth, mode="valid")
                x = x[fig.smooth - 1:]
            ax.plot(x, y, label=res.candidate.label, linewidth=1, color=colours[k % 10],
                    linestyle="-" if k < 10 else "--", marker="o" if len(x) <= 12 else None, markersize=3)
        ax.set_title(col + (f" (moving average of {fig.smooth})" if fig.smooth > 1 else ""), fontsize=9)
        ax.set_xlabel(fig.x)
    handles, labels = axes[0][0].get_legend_handles_labels()
    f.suptitle(fig.title, fontsize=10)
    f.tight_layout()
    f.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(f, out, dpi=110)


def metric_figure(results: list[Result], metric: MetricSpec, out: Path) -> Path | None:
    """A bar per candidate for the verdict metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have = [(r.candidate.label, r.metrics[metric.label]) for r in results if r.metrics.get(metric.label) is not None]
    if not have:
        return None
    # horizontal bars, labelled, the axis starting near the smallest value: differences of a few
    # percent between candidates must be visible
    f, ax = plt.subplots(figsize=(7.0, 0.8 + 0.28 * len(have)))
    values = np.array([v for _, v in have], dtype=float)
    ax.barh(range(len(have)), values, color="tab:blue")
    ax.set_yticks(range(len(have)), [lbl for lbl, _ in have], fontsize=7)
    ax.invert_yaxis()
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or abs(hi) or 1.0
    ax.set_xlim(max(0.0, lo - 0.5 * span) if lo >= 0 else lo - 0.5 * span, hi + 0.25 * span)
    for k, v in enumerate(values):
        ax.text(v, k, " " + format(v, metric.fmt), va="center", fontsize=7)
    ax.set_xlabel(f"{metric.label} ({'lower' if metric.goal == 'min' else 'higher'} is better)")
    f.tight_layout()
    return save_figure(f, out, dpi=110)


# --- page --------------------------------------------------------------------------------------

def write_report(root: Path, study_name: str, spec: StudySpec, candidates: list[Candidate], out_dir: Path,
                 uri: str | None = None) -> Path:
    """Collect the study's finished candidates and write `out_dir`/index.md and index.html;
    returns the path of index.md. Raises RuntimeError when no candidate has finished."""
    from genlab.render.report import markdown_to_html

    results, missing = collect(root, candidates, spec)
    if not results:
        raise RuntimeError(f"study {study_name}: no finished experiment yet (run: genlab study run {study_name})")
    n_tagged = attach_mlflow_runs(results, study_name, uri) if uri else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    judge = next(m for m in spec.metrics if m.goal)
    lines = [f"# Study {study_name}", "", spec.description, ""]
    lines += [*verdict(results, spec), ""]
    if spec.seed_report:
        lines += [f"_Seed report: {spec.seed_report}_", ""]
    shared = {k: v for k, v in candidates[0].overrides.items() if k not in candidates[0].varied}
    if shared:
        lines += ["Every candidate: " + ", ".join(f"`{k}={_show(v)}`" for k, v in shared.items())
                  + f"; each is the DVC experiment `{study_name}{STUDY_SEPARATOR}<candidate>` run up to stage "
                  f"`{spec.target}`.", ""]
    varied_keys = list(dict.fromkeys(k for c in candidates for k in c.varied))
    header = ["candidate", *varied_keys, *(m.label for m in spec.metrics), "experiment", "MLflow run"]
    lines += ["## Metrics", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for res in results:
        cells = [res.candidate.name, *(_show(res.params.get(k)) for k in varied_keys),
                 *(_fmt(res.metrics.get(m.label), m.fmt) for m in spec.metrics),
                 f"`{res.candidate.exp_name}` ({res.experiment.rev[:7]})",
                 f"`{res.mlflow_run[:12]}`" if res.mlflow_run else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if missing:
        lines += ["Not finished: " + ", ".join(f"`{c.name}`" for c in missing), ""]
    if uri:
        lines += [f"MLflow: {n_tagged} runs tagged `genlab.study={study_name}` "
                  f"(filter in the UI: `tags.\"genlab.study\" = '{study_name}'`).", ""]
    bar = metric_figure(results, judge, out_dir / "metric.png")
    if bar:
        lines += [f"![{judge.label}](metric.png)", ""]
    for i, fig in enumerate(spec.figures):
        name = f"figure_{i}_{fig.kind}.png"
        if fig.kind == "text":
            lines += [f"## {fig.title}", ""]
            for res in results:
                text = res.files.get(fig.path, b"").decode("utf-8", errors="replace")[: fig.chars]
                lines += [f"**{res.candidate.label}**", "", "```text", text.replace("```", "'''"), "```", ""]
            continue
        if fig.kind == "grids":
            path = grids_figure(results, i, fig, out_dir / name)
        else:
            path = (images_figure if fig.kind == "image" else curves_figure)(results, fig, out_dir / name)
        if path:
            lines += [f"## {fig.title}", "", f"![{fig.title}]({name})", ""]
    md = "\n".join(lines)
    write_text(out_dir / "index.md", md)
    write_text(out_dir / "index.html", markdown_to_html(md, title=f"genlab study {study_name}"))
    return out_dir / "index.md"
