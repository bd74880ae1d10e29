"""`genlab study list | run NAME [-j N] [--cluster [ADDRESS]] | pull NAME | report NAME`: a study of
studies.yaml as queued DVC experiments (or Dask tasks on a cluster), then one comparison page."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

HELP = "run a hyper-parameter study of studies.yaml as DVC experiments and write its comparison page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in [("list", "the studies and their candidates"),
                         ("run", "queue the study's missing candidates as DVC experiments and run them"),
                         ("pull", "dvc exp pull the study's candidates from the shared git + DVC remote"),
                         ("report", "write reports/studies/NAME/index.md and index.html from the finished candidates")]:
        p = sub.add_parser(action, help=text, description=text)
        if action != "list":
            p.add_argument("name", help="the study (a key of studies.yaml)")
        p.add_argument("--file", default=None, help="the study definitions (default: studies.yaml at the repo root)")
        p.add_argument("--preset", choices=["cpu", "gpu"], default="cpu",
                       help="cpu: the study's base budget (default); gpu: base plus its gpu overrides")
        if action == "run":
            p.add_argument("-j", "--jobs", type=int, default=1, help="DVC queue workers, experiments at a time (default 1)")
            p.add_argument("--dry-run", action="store_true", help="print the dvc commands for the missing candidates")
            p.add_argument("--report", action="store_true", help="write the comparison page when the run ends")
            p.add_argument("--cluster", nargs="?", const="local", default=None, metavar="ADDRESS",
                           help="run the candidates as Dask tasks, each in a worker's clone of the git remote, pushed "
                                "back with dvc exp push: a local cluster of -j worker processes, or the scheduler "
                                "at ADDRESS (tcp://host:8786)")
        if action in ("run", "pull"):
            p.add_argument("--remote", default="origin",
                           help="the shared git remote (and DVC's default remote) of --cluster (default origin)")
        if action == "report":
            p.add_argument("--out", default=None, help="output folder (default: reports/studies/NAME)")


def run(args: argparse.Namespace) -> int:
    from genlab.params import read_params
    from genlab.study.experiments import find_root, run_study
    from genlab.study.spec import check_candidates, expand, get_study, load_studies

    root = find_root(Path.cwd())
    path = Path(args.file) if args.file else root / "studies.yaml"
    studies = load_studies(path)
    if args.action == "list":
        for name, spec in studies.studies.items():
            cands = expand(name, spec, args.preset)
            print(f"{name}: {len(cands)} candidates, up to stage {spec.target}: {spec.description}")
            for cand in cands:
                print(f"  {cand.exp_name}  {cand.label}")
        return 0
    spec = get_study(studies, args.name, path.name)
    candidates = expand(args.name, spec, args.preset)
    if args.action == "run":
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
        if spec.target not in stages:
            raise ValueError(f"{path.name}: studies.{args.name}.target: no stage {spec.target!r} in dvc.yaml "
                             f"(stages: {', '.join(stages)})")
        check_candidates(candidates, read_params(root / "params.yaml"), path.name)
        if args.cluster is not None and not args.dry_run:
            from genlab.study.cluster import run_study_on_cluster
            from genlab.tracking import tracking_uri

            address = None if args.cluster == "local" else args.cluster
            reused, ran, failed = run_study_on_cluster(root, candidates, spec.target, address, args.jobs,
                                                       tracking_uri(root), remote=args.remote)
        else:
            reused, ran, failed = run_study(root, candidates, spec.target, jobs=args.jobs, dry_run=args.dry_run)
        if args.dry_run:
            return 0
        print(f"study {args.name}: {len(ran)} ran, {len(reused)} reused (finished on this commit), {len(failed)} failed")
        for name in failed:
            where = "above" if args.cluster is not None else f"dvc queue logs {args.name}--{name}"
            print(f"  failed: {args.name}--{name} (its log: {where})")
        if args.report and not failed:
            _report(root, args.name, spec, candidates, None)
        return 1 if failed else 0
    if args.action == "pull":
        from genlab.study.cluster import pull_candidates

        pulled = pull_candidates(root, [c.exp_name for c in candidates], args.remote)
        print(f"study {args.name}: pulled {len(pulled)} of {len(candidates)} candidates from {args.remote}")
        return 0 if pulled else 1
    _report(root, args.name, spec, candidates, args.out)
    return 0


def _report(root: Path, name: str, spec, candidates, out: str | None) -> None:
    from genlab.study.report import write_report
    from genlab.tracking import tracking_uri

    out_dir = Path(out) if out else root / "reports" / "studies" / name
    index = write_report(root, name, spec, candidates, out_dir, uri=tracking_uri(root))
    print(f"study {name}: {index} and {index.with_suffix('.html')}")
