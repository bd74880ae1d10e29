"""MLflow tracking: one parent run per pipeline execution, one nested child run per stage.

* Tracking URI: ``MLFLOW_TRACKING_URI``, else ``sqlite:///<absolute repo root>/mlflow.db``
  (absolute, so that experiments DVC runs from ``.dvc/tmp/exps/`` log to the same store).
* The parent run is keyed by the pipeline execution: the DVC experiment name when DVC sets
  ``DVC_EXP_NAME``; else the ``dvc`` process that runs the stages (one ``dvc repro`` = one
  parent); else (a stage run by hand) a parent of its own.
* Stages write their DVC outputs *before* logging here, and a tracking failure is reported as
  a warning: it never loses a trained model or fails a stage whose outputs are written.
* An unreachable store is found fast and once per stage (:func:`store_problem`: a short connect
  (``CONNECT_TIMEOUT_S``) for a server, a folder check for sqlite; MLflow's own retries would stall each stage for
  minutes) and costs one warning line. A server must also answer a short request within the
  same budget (one that accepts connections but never answers is unreachable too), and an
  unreachable server is remembered under ``.genlab/`` for the pipeline execution: its later
  stages skip tracking at once, so a pipeline pays the budget once. Writers of one sqlite store (stages of parallel
  ``dvc exp run``s, ``dvc queue start -j N``) take turns through a file lock (:func:`store_lock`):
  concurrent first use of a fresh store, or overlapping writes, lose no run.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from genlab.errors import first_line
from genlab.params import CommonParams, flatten
from genlab.runtime import format_tsv_row, log, repo_root, write_tsv

PIPELINE_TAG = "genlab.pipeline"
STAGE_TAG = "genlab.stage"
# `genlab study run` names each DVC experiment `<study>--<candidate>` (genlab.study)
STUDY_TAG, CANDIDATE_TAG, STUDY_SEPARATOR = "genlab.study", "genlab.candidate", "--"


def study_tags(exp_name: str | None) -> dict[str, str]:
    """The study and candidate tags of a study's experiment (by its name), so the MLflow UI can filter them."""
    study, sep, candidate = (exp_name or "").partition(STUDY_SEPARATOR)
    return {STUDY_TAG: study, CANDIDATE_TAG: candidate} if sep and study and candidate else {}


# seconds a stage waits for an MLflow server to connect and answer before it logs nothing (one warning)
CONNECT_TIMEOUT_S = 3.0
# an unreachable server, remembered for the rest of the pipeline execution (pipeline_key)
UNREACHABLE_MARKER = Path(".genlab/tracking-unreachable.json")
# MLflow's HTTP client retries 7 times with exponential backoff by default (minutes per call); a stage needs few
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
# waits between tries of a write that met "database is locked" (another process writing)
LOCKED_RETRY_S = (0.5, 1.0, 2.0, 4.0)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores or in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def store_problem(uri: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """A fast check that the tracking store at `uri` can be reached: None, or one line saying why not."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("http", "https"):
        host, port = parsed.hostname or "localhost", parsed.port or (443 if parsed.scheme == "https" else 80)
        deadline = time.monotonic() + timeout
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            return f"cannot connect to {host}:{port} ({exc.strerror or exc or type(exc).__name__})"
        sock.close()
        return _no_answer(parsed, host, port, max(0.1, deadline - time.monotonic()))
    path = sqlite_path(uri)
    if path is not None:
        if path.exists():
            if not path.is_file():
                return f"{path} is not a file"
            return None if os.access(path, os.W_OK) else f"{path} is not writable"
        existing = next(p for p in path.absolute().parents if p.exists())  # MLflow creates the folders below it
        if not existing.is_dir():
            return f"{existing} is not a folder"
        if not os.access(existing, os.W_OK):
            return f"{existing} is not writable"
    return None


def _no_answer(parsed: urllib.parse.ParseResult, host: str, port: int, timeout: float) -> str | None:
    """None when the server answers a GET of its health endpoint (any HTTP status, or a TLS
    handshake) within `timeout`; else why not. A server that accepts connections but never
    answers would hold each MLflow call for its request timeout, times its retries."""
    kind = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    conn = kind(host, port, timeout=timeout)
    try:
        conn.request("GET", parsed.path.rstrip("/") + "/health")
        conn.getresponse().read(64)
    except TimeoutError:
        return f"connected to {host}:{port}, but no answer within {timeout:.0f} s"
    except OSError as exc:
        import ssl

        if isinstance(exc, ssl.SSLError):
            return None  # it speaks TLS: certificates are MLflow's business, not this check's
        return f"{host}:{port} did not answer ({exc.strerror or exc or type(exc).__name__})"
    except http.client.HTTPException as exc:
        return f"{host}:{port} did not answer HTTP ({type(exc).__name__})"
    finally:
        conn.close()
    return None


def known_unreachable(root: Path, uri: str, key: str) -> bool:
    """Whether an earlier stage of this pipeline execution found the store at `uri` unreachable."""
    try:
        marker = json.loads((root / UNREACHABLE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("uri") == uri and marker.get("pipeline") == key


def remember_unreachable(root: Path, uri: str, key: str, problem: str) -> None:
    """Tell the later stages of this pipeline execution to skip the store (best effort)."""
    try:
        (root / UNREACHABLE_MARKER).parent.mkdir(parents=True, exist_ok=True)
        (root / UNREACHABLE_MARKER).write_text(json.dumps({"uri": uri, "pipeline": key, "problem": problem}))
    except OSError:
        pass


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock on a sqlite store across processes (a no-op for other stores).

    MLflow creates a fresh sqlite store's tables with migrations that race when two processes
    open it at once ("duplicate column name"), and a write waits only sqlite's short busy
    timeout for another writer ("database is locked"). The lock file lives in the temp folder,
    not beside the store."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    import fcntl

    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"genlab-mlflow-{digest}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (SQLAlchemy and MLflow errors span many lines)."""
    return first_line(exc, typed=True)


def tracking_uri(root: str | Path | None = None) -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    main_root = _main_repo_root(Path(root) if root else repo_root())
    return f"sqlite:///{main_root / 'mlflow.db'}"


def _main_repo_root(root: Path) -> Path:
    """`dvc exp run --queue/--temp` runs in `.dvc/tmp/exps/<tmp>/`: log to the parent repo's store."""
    parts = root.resolve().parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root.resolve()


def _dvc_process() -> tuple[int, str] | None:
    """The nearest ancestor process that is `dvc`, as (pid, start time), or None."""
    pid = os.getppid()
    for _ in range(12):
        if pid <= 1:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        words = [Path(w.decode(errors="replace")).name for w in cmdline[:3]]
        if "dvc" in words:
            return pid, stat.rsplit(")", 1)[1].split()[19]
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


def pipeline_key() -> tuple[str, str]:
    """(key, display name) of the pipeline execution this process belongs to."""
    exp = os.environ.get("DVC_EXP_NAME")
    if exp:
        return f"exp:{exp}", exp
    proc = _dvc_process()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    if proc:
        return f"dvc:{socket.gethostname()}:{proc[0]}:{proc[1]}", f"workspace {stamp}"
    return f"manual:{os.getpid()}:{time.time_ns()}", f"manual {stamp}"


def git_commit(root: Path) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


class StageRun:
    """What a stage logs to; every method is a no-op when tracking is disabled."""

    def __init__(self, client: Any = None, run_id: str | None = None, uri: str | None = None,
                 parent_id: str | None = None):
        self.client, self.run_id, self.uri, self.parent_id = client, run_id, uri, parent_id
        self.streamed: set[str] = set()  # history curves already logged live (genlab.tracking)

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def log_params(self, params: dict[str, Any]) -> None:
        if self.active:
            from mlflow.entities import Param

            items = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.active and metrics:
            from mlflow.entities import Metric

            ts = int(time.time() * 1000)
            items = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None]
            self.client.log_batch(self.run_id, metrics=items)

    def log_history(self, rows: list[dict[str, Any]], step_key: str = "step", prefix: str = "") -> None:
        """Log per-step curves (the rows of a plots/*.tsv) in batches."""
        if not self.active:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [
            Metric(f"{prefix}{k}", float(v), ts, int(r[step_key]))
            for r in rows
            for k, v in r.items()
            if k != step_key and isinstance(v, (int, float))
        ]
        for i in range(0, len(items), 900):
            self.client.log_batch(self.run_id, metrics=items[i : i + 900])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.active and Path(path).exists():
            if Path(path).is_dir():
                self.client.log_artifacts(self.run_id, str(path), artifact_path)
            else:
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.active:
            for k, v in tags.items():
                self.client.set_tag(self.run_id, k, str(v))

    def log_model(self, checkpoint: str | os.PathLike, name: str = "model", register_as: str | None = None) -> None:
        """Log a genlab checkpoint as an MLflow model called `name` that runs no pickle when loaded.

        The model is a pyfunc whose code is genlab's and whose only artifact is the checkpoint
        (read with ``torch.load(weights_only=True)``; see :mod:`genlab.serve.pyfunc`), with a
        signature: ``mlflow.pyfunc.load_model`` and ``mlflow models serve`` answer with it. It is
        an MLflow 3 LoggedModel: its URI ``models:/<model_id>`` is logged and set as the run tag
        ``genlab.model.<name>``. `register_as`: also a new version of registered model
        ``<register_as>-<name>``.
        """
        if not self.active:
            return
        if not isinstance(checkpoint, (str, os.PathLike)):
            # a bare module cannot be rebuilt without its config, and pickling it is what this replaces
            raise TypeError(f"models[{name!r}]: expected the path of a genlab checkpoint, got {type(checkpoint).__name__}")
        from genlab.serve.pyfunc import log_checkpoint_model

        registered = f"{register_as}-{name}" if register_as else None
        with _activate(self.uri, self.run_id), _quiet_artifact_progress():
            info = log_checkpoint_model(checkpoint, name, registered)
        self.client.set_tag(self.run_id, f"genlab.model.{name}", info.model_uri)
        log(f"mlflow: {name} logged as {info.model_uri}" + (f", registered as {registered}" if registered else ""))

    def log_dataset(self, features: Any, *, context: str, data_dir: str | Path, targets: Any = None) -> None:
        """Log the prepared data set in `data_dir` as this run's input (``mlflow.log_input``).

        Its name is ``<source of meta.json>/<split>`` (``synthetic-digits/train``: MLflow keeps one
        input per name and digest, so the splits need their own names), its source the folder,
        its digest the first 32 hex digits of the sha256 of ``meta.json`` (which holds every data
        file's sha256; MLflow keeps 36 characters), its context the split (``train`` | ``test``
        | ``val``). `features` (and `targets`) give the schema and profile.
        """
        if not self.active:
            return
        import json

        import mlflow
        import mlflow.data

        meta_path = Path(data_dir) / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        dataset = mlflow.data.from_numpy(features, targets=targets, source=str(Path(data_dir).resolve()),
                                         name=f"{meta.get('source', Path(data_dir).name)}/{context}",
                                         digest=data_fingerprint(meta_path)[:32])
        with _activate(self.uri, self.run_id):
            mlflow.log_input(dataset, context=context)

    def log_model_metrics(self, checkpoint: str | os.PathLike, metrics: dict[str, float]) -> list[str]:
        """Log `metrics` to the LoggedModel(s) of `checkpoint` (found by its sha256 tag) and to
        this run; return their model ids (none when the checkpoint was never logged as a model)."""
        if not self.active:
            return []
        import mlflow

        from genlab.runtime import sha256_file
        from genlab.serve.pyfunc import CHECKPOINT_TAG

        mlflow.set_tracking_uri(self.uri)
        exp_id = self.client.get_run(self.run_id).info.experiment_id
        found = mlflow.search_logged_models(
            experiment_ids=[exp_id], filter_string=f"tags.`{CHECKPOINT_TAG}` = '{sha256_file(checkpoint)}'",
            output_format="list")
        for model in found:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, run_id=self.run_id,
                               model_id=model.model_id)
        return [m.model_id for m in found]


@contextlib.contextmanager
def _quiet_artifact_progress() -> Iterator[None]:
    """MLflow draws a progress bar per artifact it copies while logging a model: noise in stage logs."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


@contextlib.contextmanager
def _activate(uri: str, run_id: str) -> Iterator[None]:
    import mlflow

    mlflow.set_tracking_uri(uri)
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    with mlflow.start_run(run_id=run_id, nested=True):
        yield


def _find_or_create_parent(client: Any, experiment_id: str, key: str, name: str, tags: dict[str, str]) -> str:
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{PIPELINE_TAG}` = '{key}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=name, tags={PIPELINE_TAG: key, **tags})
    return run.info.run_id


@contextlib.contextmanager
def stage_run(
    stage: str,
    common: CommonParams,
    params: dict[str, Any],
    tags: dict[str, Any] | None = None,
) -> Iterator[StageRun]:
    """Open the child run of `stage` under this pipeline execution's parent run.

    Yields a :class:`StageRun`; on exit the child run is FINISHED (FAILED if the block
    raised). When tracking is disabled, or the store cannot be reached, yields an inactive
    StageRun and the stage goes on: its DVC outputs are what matters.
    """
    if not common.tracking.enabled:
        yield StageRun()
        return
    root = repo_root()
    uri = tracking_uri(root)
    server = urllib.parse.urlparse(uri).scheme in ("http", "https")
    # this pipeline execution: its name and the `dvc` process running it (an experiment name may come back)
    key = f"{pipeline_key()[0]} {_dvc_process()}" if server else ""
    if server and known_unreachable(root, uri, key):
        yield StageRun()  # the first stage of this pipeline said so, once
        return
    problem = store_problem(uri)
    if problem:
        later = ""
        if server:
            remember_unreachable(root, uri, key, problem)
            later = f"; later stages of this pipeline skip it ({UNREACHABLE_MARKER})"
        log(f"warning: MLflow tracking disabled for this stage: store {uri}: {problem}{later}")
        yield StageRun()
        return
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(common.tracking.experiment)
        # artifacts of the default sqlite store go next to it, in the main repo: the first run
        # may be a queued experiment whose working copy (.dvc/tmp/exps/...) DVC deletes
        where = (_main_repo_root(root) / "mlruns").as_uri() if "MLFLOW_TRACKING_URI" not in os.environ else None
        exp_id = exp.experiment_id if exp else client.create_experiment(common.tracking.experiment,
                                                                        artifact_location=where)
        key, name = pipeline_key()
        base_tags = {
            "git_commit": git_commit(root),
            "dvc_experiment": os.environ.get("DVC_EXP_NAME", "workspace"),
            **study_tags(os.environ.get("DVC_EXP_NAME")),
        }
        parent_id = _find_or_create_parent(client, exp_id, key, name, base_tags)
        child = client.create_run(
            exp_id,
            run_name=stage,
            tags={
                "mlflow.parentRunId": parent_id,
                STAGE_TAG: stage,
                PIPELINE_TAG + ".parent": key,
                "stage": stage,
                "device": common.device,
                **base_tags,
                **{k: str(v) for k, v in (tags or {}).items()},
            },
        )
        run = StageRun(client, child.info.run_id, uri, parent_id)
        run.log_params({"seed": common.seed, "device": common.device, **params})
    except Exception as exc:  # noqa: BLE001 - tracking must never cost a stage its outputs
        log(f"warning: MLflow tracking disabled for this stage: {one_line(exc)}")
        yield StageRun()
        return
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        try:
            client.set_terminated(run.run_id, status)
            client.set_terminated(parent_id, status if status == "FAILED" else "FINISHED")
        except Exception as exc:  # noqa: BLE001
            log(f"warning: could not close MLflow run: {one_line(exc)}")


@contextlib.contextmanager
def live_stage_run(stage: str, common: CommonParams, params: Any,
                   tags: dict[str, Any] | None = None) -> Iterator[StageRun]:
    """The stage's MLflow run, open from the stage's start to its end (training stages).

    Curves log into it while the stage trains (:class:`genlab.tracking.LiveCurve`), MLflow's
    system metrics (CPU, memory, disk, network, GPU; needs psutil) sample it in a thread, and
    :func:`log_stage` ``(..., run=run)`` adds the final metrics, artifacts and models to it. The
    store is locked only while writing, never for the whole stage. Inactive (every method a
    no-op) when tracking is off, the store is unreachable, or this is not rank 0 under DDP.
    """
    from genlab.distributed import is_main_process

    if not common.tracking.enabled or not is_main_process():
        yield StageRun()
        return
    if hasattr(params, "model_dump"):
        params = params.model_dump(mode="json")
    opened = stage_run(stage, common, params or {}, tags)
    with store_lock(tracking_uri()):
        run = opened.__enter__()
    monitor = _system_metrics(run)
    exc_info: tuple[Any, Any, Any] = (None, None, None)
    try:
        yield run
    except BaseException as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
        raise
    finally:
        if monitor is not None:
            with contextlib.suppress(Exception):
                monitor.finish()
        with store_lock(tracking_uri()):
            try:
                opened.__exit__(*exc_info)
            except BaseException as exc:  # noqa: BLE001 - the stage's own exception, re-raised above
                if exc is not exc_info[1]:
                    raise


def _system_metrics(run: StageRun) -> Any:
    """MLflow's system-metrics sampler on `run` (started), or None without psutil or a run."""
    if not run.active:
        return None
    try:
        import psutil  # noqa: F401 - MLflow's CPU and memory monitors need it
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run.run_id, tracking_uri=run.uri)
        monitor.start()
        return monitor
    except Exception as exc:  # noqa: BLE001 - a sampler is a nicety, never a failed stage
        log(f"warning: no MLflow system metrics for this stage: {one_line(exc)}")
        return None


def safe(fn, *args: Any, **kwargs: Any) -> None:
    """Call a logging function; a tracking failure becomes a warning, never a lost stage.
    A write that met another writer's lock ("database is locked") is tried again with backoff."""
    for wait in (*LOCKED_RETRY_S, None):
        try:
            fn(*args, **kwargs)
            return
        except Exception as exc:  # noqa: BLE001
            if wait is not None and "database is locked" in str(exc):
                time.sleep(wait)
                continue
            log(f"warning: MLflow logging failed ({getattr(fn, '__name__', fn)}): {one_line(exc)}")
            return


def data_fingerprint(meta_path: str | Path) -> str:
    """sha256 of a data stage's meta.json (which holds the sha256 of every data file)."""
    from genlab.runtime import sha256_file

    return sha256_file(meta_path) if Path(meta_path).exists() else "missing"


def log_stage(
    stage: str,
    common: CommonParams,
    params: Any,
    *,
    metrics: dict[str, float] | None = None,
    history: dict[str, list[dict[str, Any]]] | None = None,
    artifacts: list[str | Path] | None = None,
    models: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    parent_artifacts: list[str | Path] | None = None,
    run: StageRun | None = None,
    datasets: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
    model_metrics: dict[str | Path, dict[str, float]] | None = None,
) -> None:
    """Log a finished stage to MLflow in one go, *after* its DVC outputs are written.

    `params` is the stage's validated config (a pydantic model or a dict), logged flattened
    (``lr``, ``disc.dropout``) beside ``seed`` and ``device``; `history` maps a
    curve name to rows with a ``step`` key (the rows of `plots/<stage>/<name>.tsv`); `models`
    maps an artifact name to the model's checkpoint path (``{"generator":
    "models/gan/checkpoint.pt"}``), logged as an MLflow pyfunc model (see
    :meth:`StageRun.log_model`); `parent_artifacts` go to the pipeline's parent run (the run
    report). `run`: the stage's :func:`live_stage_run` (params already logged; curves it
    streamed are not logged again); None opens and closes a run here. `datasets` maps a split
    (``train``, ``test``) to its features array or ``(features, targets)``, logged as the run's
    inputs from the prepared folder `data_dir` (:meth:`StageRun.log_dataset`). `model_metrics`
    maps a checkpoint path to metrics of that model, logged to its MLflow LoggedModel
    (``mlflow.search_logged_models`` then ranks models by them). Never raises: a tracking
    failure is a warning.
    """
    if hasattr(params, "model_dump"):
        params = params.model_dump(mode="json")
    live = run is not None
    try:
        with store_lock(tracking_uri()) if common.tracking.enabled else contextlib.nullcontext(), \
                (contextlib.nullcontext(run) if run is not None else stage_run(stage, common, params or {}, tags)) as run:
            if not run.active:
                return
            if live and tags:  # a run opened here got them at creation
                safe(run.set_tags, tags)
            for name, rows in (history or {}).items():
                if name not in run.streamed:
                    safe(run.log_history, rows, "step", "")
            safe(run.log_metrics, metrics or {})
            for path in artifacts or []:
                safe(run.log_artifact, path, None)
            for path in parent_artifacts or []:
                safe(StageRun(run.client, run.parent_id, run.uri).log_artifact, path, None)
            for context, arrays in (datasets or {}).items():
                features, targets = arrays if isinstance(arrays, tuple) else (arrays, None)
                safe(run.log_dataset, features, context=context, data_dir=data_dir, targets=targets)
            if common.tracking.log_models:
                for name, model in (models or {}).items():
                    safe(run.log_model, model, name, common.tracking.register_as)
            for checkpoint, values in (model_metrics or {}).items():
                if Path(checkpoint).exists():
                    safe(run.log_model_metrics, checkpoint, values)
    except Exception as exc:  # noqa: BLE001
        log(f"warning: MLflow logging failed for stage {stage}: {one_line(exc)}")


# ------------------------------------------------------------------ live curves
# Live training curves: a ``plots/<stage>/*.tsv`` and the stage's MLflow run that grow as it trains.
# 
# The loop (:mod:`genlab.train.loop`) hands each history row to a :class:`LiveCurve` as it is
# made. The curve appends it to its TSV as one whole line in one ``write`` on an ``O_APPEND``
# file (so ``dvc plots show``, the VS Code DVC extension or ``tail -f`` never read a torn row)
# and logs it to the stage's MLflow run at the row's step. On start, and after a resume, the
# file is rewritten from the rows the checkpoint holds: rows a killed run wrote past its last
# checkpoint are dropped, never repeated. The stage still writes the final file at the end
# (the same rows).


class LiveCurve:
    """One curve: a TSV file and (optionally) an MLflow run.

    `columns` picks and orders the row keys written to the file (default: all, in the first
    row's order); `step_key` is the row key MLflow uses as the step; `name` is the curve's
    name in :func:`genlab.tracking.log_stage`'s ``history`` (it then skips the rows logged here).
    """

    def __init__(self, path: str | Path, run: StageRun | None = None, *, name: str,
                 columns: Sequence[str] | None = None, step_key: str = "step",
                 transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None):
        self.path, self.run, self.name = Path(path), run or StageRun(), name
        self.columns, self.step_key, self.transform = list(columns) if columns else None, step_key, transform
        self.keys: list[str] | None = None

    def _row(self, row: dict[str, Any]) -> dict[str, Any]:
        row = self.transform(row) if self.transform else row
        return {k: row.get(k) for k in self.columns} if self.columns else row

    def reset(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite the file with `rows` (a fresh run: none; a resume: the checkpoint's) and log them."""
        rows = [self._row(r) for r in rows]
        self.keys = list(rows[0]) if rows else None
        write_tsv(self.path, rows)  # atomic: a reader sees the old file or the new one
        self._log(rows)
        if self.run.active:
            self.run.streamed.add(self.name)

    def append(self, row: dict[str, Any]) -> None:
        """Add one row: one whole line, written and flushed in one system call."""
        row = self._row(row)
        head = ""
        if self.keys is None:
            self.keys = list(row)
            head = "\t".join(self.keys) + "\n"
        line = head + format_tsv_row(row, self.keys) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        self._log([row])

    def _log(self, rows: list[dict[str, Any]]) -> None:
        if self.run.active and rows:
            with store_lock(self.run.uri):
                safe(self.run.log_history, rows, self.step_key, "")
