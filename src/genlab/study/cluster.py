"""A study's candidates on a Dask cluster instead of one machine's DVC queue.

Each candidate is the same ``dvc exp run -n <study>--<candidate> -S ... <target>`` that the local
queue runs, but in a Dask worker's own clone of the shared git remote at the study's commit; it
logs to the caller's MLflow tracking URI (one server for all) and ends with ``dvc exp push
<remote> <name>``: the experiment's git ref goes to the shared git remote and its outputs to the
DVC remote that the commit's ``.dvc/config`` names. The caller then ``dvc exp pull``s each one,
so ``genlab study report`` sees every candidate, as does any clone after ``genlab study pull``.

Dask distributed (BSD-3) is the engine: pure Python, a ``LocalCluster`` of worker processes on
this machine by default, or any running scheduler (``dask scheduler`` on one machine, ``dask
worker tcp://host:8786`` on each of the others) by its address; a task is a plain function call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from genlab.runtime import log, progress
from genlab.study.experiments import _dvc, dvc_env, finished, git, head, queue_command, run_dvc
from genlab.study.spec import Candidate

TAIL = 1500  # characters of a failed command's output that come back to the caller


def _run(cmd: list[str], cwd: Path | None, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def run_candidate(remote_url: str, commit: str, exp_name: str, exp_args: list[str], remote: str,
                  tracking_uri: str, workdir: str | None = None, force: bool = False) -> dict[str, Any]:
    """On a Dask worker: clone `remote_url` at `commit`, ``dvc <exp_args>`` (an ``exp run``),
    then ``dvc exp push <remote> <exp_name>``. A dict: name, ok, seconds, host, and on failure
    the step and the end of its output. Needs git, dvc and genlab's dependencies on the worker;
    the stages run the clone's own ``src/``."""
    t0 = time.perf_counter()
    clone = Path(tempfile.mkdtemp(prefix=f"genlab-{exp_name}-", dir=workdir))
    env = dvc_env()
    env["PYTHONPATH"] = os.pathsep.join([str(clone / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env.pop("DVC_EXP_NAME", None)
    steps = [("clone", ["git", "clone", "-q", remote_url, str(clone)], None),
             ("checkout", ["git", "checkout", "-q", commit], clone),
             ("exp run", [_dvc(), *exp_args], clone),
             ("exp push", [_dvc(), "exp", "push", *(["-f"] if force else []), remote, exp_name], clone)]
    result: dict[str, Any] = {"name": exp_name, "ok": True, "host": os.uname().nodename}
    for step, cmd, cwd in steps:
        proc = _run(cmd, cwd, env)
        if proc.returncode != 0:
            result.update(ok=False, step=step, output=(proc.stdout + proc.stderr)[-TAIL:], clone=str(clone))
            break
    else:
        shutil.rmtree(clone, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def remote_url(root: Path, remote: str) -> str:
    try:
        return git(root, "remote", "get-url", remote).strip()
    except RuntimeError:
        raise RuntimeError(f"{root}: no git remote {remote!r}; a cluster study clones the repository from the shared "
                           f"git remote (git remote add {remote} URL)") from None


def check_shared(root: Path, remote: str, commit: str) -> str:
    """The remote's URL, once the study's commit is on it and the commit names a DVC remote."""
    url = remote_url(root, remote)
    git(root, "fetch", "-q", remote)
    if not git(root, "branch", "-r", "--contains", commit).strip():
        raise RuntimeError(f"commit {commit[:7]} is not on the git remote {remote!r}: the workers clone it from there "
                           f"(git push {remote} HEAD)")
    config = subprocess.run(["git", "show", f"{commit}:.dvc/config"], cwd=root, capture_output=True, text=True).stdout
    if "remote =" not in config:
        raise RuntimeError("no default DVC remote in the committed .dvc/config: the workers push each experiment's "
                           "outputs there (dvc remote add -d NAME URL, then commit .dvc/config)")
    return url


def pull_candidates(root: Path, names: list[str], remote: str = "origin") -> list[str]:
    """``dvc exp pull <remote> <name>`` for each experiment name; the names pulled."""
    pulled = []
    for name in names:
        try:
            run_dvc(root, "exp", "pull", "-f", remote, name)
            pulled.append(name)
        except RuntimeError as exc:
            log(f"{name}: not pulled from {remote} ({exc})")
    return pulled


def run_study_on_cluster(root: Path, candidates: list[Candidate], target: str, address: str | None, jobs: int,
                         tracking_uri: str, remote: str = "origin",
                         workdir: str | None = None) -> tuple[list[str], list[str], list[str]]:
    """Run the candidates without a finished experiment on HEAD as Dask tasks (a LocalCluster of
    `jobs` worker processes when `address` is None), then pull every finished one into `root`.
    Returns (reused, ran, failed) candidate names, as :func:`genlab.study.experiments.run_study`."""
    from dask.distributed import Client, LocalCluster, as_completed

    done, stale = finished(root, candidates)
    todo = [c for c in candidates if c.name not in done]
    if not todo:
        return sorted(done), [], []
    commit = head(root)
    url = check_shared(root, remote, commit)
    if address is None:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
        where = f"a local Dask cluster of {jobs} worker process(es)"
    else:
        cluster, where = None, f"the Dask scheduler at {address}"
    log(f"running {len(todo)} candidate(s) of {len(candidates)} ({len(done)} already done) on {where}; "
        f"experiments pushed to {remote} ({url}), runs logged to {tracking_uri}")
    ran, failed = [], []
    try:
        with Client(cluster if cluster is not None else address) as client:
            futures = {}
            for cand in todo:
                args = [a for a in queue_command(cand, target, force=cand.name in stale) if a != "--queue"]
                fut = client.submit(run_candidate, url, commit, cand.exp_name, args, remote, tracking_uri, workdir,
                                    cand.name in stale, key=f"genlab-{cand.exp_name}-{commit[:7]}", pure=False)
                futures[fut] = cand
            with progress(desc=f"study {candidates[0].study}", total=len(futures), unit="exp") as bar:
                for fut in as_completed(futures):
                    cand, res = futures[fut], fut.result()
                    if res["ok"]:
                        ran.append(cand)
                    else:
                        failed.append(cand.name)
                        log(f"{cand.exp_name} failed at {res['step']} on {res['host']} (its clone: {res['clone']}):\n"
                            f"{res['output'].strip()}")
                    bar.update(1)
    finally:
        if cluster is not None:
            cluster.close()
    pulled = set(pull_candidates(root, [c.exp_name for c in ran], remote))
    failed += [c.name for c in ran if c.exp_name not in pulled]
    return sorted(done), sorted(c.name for c in ran if c.exp_name in pulled), sorted(failed)
