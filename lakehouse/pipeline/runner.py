"""Executing the graph: ``lakehouse run``, ``lakehouse plan``, and one stage for a command or a scheduler.

For each stage in dependency order: take the stage's lock (one execution of a stage at a time across
processes: the CLI and Airflow may overlap), compute its fingerprint from the current versions of
its inputs, compare it with the last successful run (:func:`lakehouse.pipeline.fingerprint.assess`)
and either skip it with the reason, or run it and record what it consumed and produced. A failed
stage records nothing and its downstream stages are skipped; stages that do not depend on it go on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import importlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from lakehouse.config import Config
from lakehouse.heap import settle as settle_heap
from lakehouse.pipeline import graph
from lakehouse.pipeline.assets import AssetProbe
from lakehouse.pipeline.fingerprint import Fingerprint, Verdict, assess, fingerprint
from lakehouse.pipeline.graph import Stage
from lakehouse.pipeline.stage import StageContext, StageFailed
from lakehouse.pipeline.state import StageRuns

#: The stage every other stage waits for: nothing runs on a broken configuration or storage.
GATE = "health"
#: Fault injection for the reliability drills: ``<stage>:<seconds>`` makes that stage pause after its work
#: and before its record is written (a kill -9 there leaves written outputs and no record).
PAUSE_BEFORE_RECORD_ENV = "LAKEHOUSE_TEST_PAUSE_BEFORE_RECORD"


@dataclass
class Outcome:
    """What happened to one stage in a run."""

    stage: str
    result: str  # ok | skipped | failed | blocked | not selected
    seconds: float = 0.0
    detail: str = ""
    error: StageFailed | None = None


def load_function(target: str) -> Callable[[StageContext], str | None]:
    """The stage function named ``module:function``."""
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


@contextlib.contextmanager
def stage_lock(cfg: Config, name: str, console: Console | None = None) -> Iterator[None]:
    """Hold ``$LAKEHOUSE_HOME/run/stage-<name>.lock`` (waits while another process runs the stage)."""
    path = cfg.run_dir / f"stage-{name}.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if console is not None:
                console.print(f"[yellow]{name}: another process is running this stage; waiting ({path})[/]")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Session:
    """One run over the open lake: asset versions, stage records, and how to judge and run a stage."""

    def __init__(self, cfg: Config, lake, console: Console, run_id: str | None = None) -> None:  # noqa: ANN001
        self.cfg = cfg
        self.lake = lake
        self.console = console
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.probe = AssetProbe(cfg, lake)
        self.runs = StageRuns(lake)

    def failure(self, stage: Stage, exc: Exception) -> StageFailed:
        """``exc`` as the stage's :class:`StageFailed`, naming the services the lake needs that no longer
        answer (a lost object store otherwise surfaces as a client library's connection error) or the full
        or read-only disk behind it."""
        from lakehouse.pipeline.diagnosis import disk_problem, state_dir_problem, unreachable

        name = stage.name
        uses_mlflow = stage.run.startswith("ml.") or any(a.startswith("mlflow:") for a in (*stage.reads, *stage.writes))
        own = isinstance(exc, StageFailed)
        down = [d for d in (disk_problem(self.cfg, exc) or state_dir_problem(self.cfg),) if d]
        down += unreachable(self.cfg, getattr(self.lake, "uri", None), mlflow=uses_mlflow)
        said = str(exc)  # a cause that already names the service (ml.tracking does) needs no repetition
        down = [d for d in down if not ((m := re.search(r" at (\S+) is not reachable", d)) and m.group(1) in said)]
        if not down:
            return exc if own else StageFailed(name, exc, getattr(exc, "log_path", None))
        return StageFailed(name, exc.cause if own else exc, exc.log_path if own else getattr(exc, "log_path", None),
                           context="; ".join(down))

    def judge(self, stage: Stage) -> tuple[Verdict, Fingerprint]:
        """The stage's verdict and its current fingerprint."""
        versions = self.probe.versions(stage.reads)
        if stage.inputs_view:
            versions = load_function(stage.inputs_view)(self.cfg, self.lake, versions, self.runs.latest())
        fp = fingerprint(self.cfg, stage, versions)
        outputs = self.probe.versions(stage.writes)
        return assess(stage, fp, outputs, self.runs.latest().get(stage.name)), fp

    def execute(self, stage: Stage, fp: Fingerprint, verdict: Verdict, *, rebuild: bool,
                options: dict | None = None, record: bool = True) -> str:
        """Run the stage function; on success record the fingerprint and output versions."""
        ctx = StageContext(self.cfg, self.console, self.lake, stage.name, rebuild=rebuild,
                           reasons=list(verdict.reasons), options=dict(options or {}))
        started = dt.datetime.now(dt.UTC)
        try:
            run = load_function(stage.run)
            settle_heap()  # the stage's libraries are imported: see lakehouse.heap
            detail = run(ctx) or ""
        except Exception as exc:  # noqa: BLE001 - every failure becomes the stage's StageFailed
            err = self.failure(stage, exc)
            if err is exc:
                raise
            raise err from exc
        finally:
            self.probe.forget(stage.writes)
        if record and not stage.always:
            _pause_for_drills(stage.name, self.console)
            try:
                outputs = self.probe.versions(stage.writes)
                self.runs.record(stage.name, fp, outputs, detail=detail, run_id=self.run_id, started_at=started,
                                 finished_at=dt.datetime.now(dt.UTC))
            except Exception as exc:  # noqa: BLE001 - the stage's own commits stand; the next run repeats it
                note = RuntimeError(f"the stage finished ({detail or 'ok'}) but its run could not be recorded, "
                                    f"so the next run does it again: {type(exc).__name__}: {exc}")
                raise self.failure(stage, note) from exc
        return detail


def _pause_for_drills(name: str, console: Console) -> None:
    """The :data:`PAUSE_BEFORE_RECORD_ENV` hook (unset in normal runs: nothing happens)."""
    stage, _, seconds = os.environ.get(PAUSE_BEFORE_RECORD_ENV, "").partition(":")
    if stage != name:
        return
    try:
        wait = float(seconds)
    except ValueError:  # a test hook: a bad value must not fail the stage whose work is done
        console.print(f"[yellow]{PAUSE_BEFORE_RECORD_ENV}={stage}:{seconds}: not a number of seconds, ignored[/]")
        return
    console.print(f"{name}: pausing {wait}s before recording ({PAUSE_BEFORE_RECORD_ENV})")
    time.sleep(wait)


def select(stages: Sequence[Stage], only: Sequence[str] = (), start_from: str | None = None) -> list[str]:
    """Names of the stages a run executes: all, ``only`` these, or ``start_from`` and its downstream."""
    names = [s.name for s in stages]
    for n in [*only, *([start_from] if start_from else [])]:
        graph.get(tuple(stages), n)
    if only and start_from:
        raise graph.GraphError("use --only or --from, not both")
    if only:
        return [n for n in names if n in set(only)]
    if start_from:
        return graph.downstream(tuple(stages), start_from)
    return names


def run_pipeline(cfg: Config, console: Console, *, only: Sequence[str] = (), start_from: str | None = None,
                 force: bool = False, run_id: str | None = None) -> list[Outcome]:
    """Run the selected stages in dependency order, skipping fresh ones unless ``force``."""
    from lakehouse.lake import import_lake_modules, open_lake

    stages = graph.pipeline(cfg)
    chosen = set(select(stages, only, start_from))
    outcomes: dict[str, Outcome] = {}
    import_lake_modules(cfg)
    settle_heap()  # before the run's lake is open (lakehouse.heap); stages settle again after big imports
    with open_lake(cfg) as lake:
        session = Session(cfg, lake, console, run_id)
        for stage in stages:
            if stage.name not in chosen:
                outcomes[stage.name] = Outcome(stage.name, "not selected")
                continue
            bad = [u for u in (graph.upstream(stages, stage.name) | ({GATE} - {stage.name}))
                   if outcomes.get(u) and outcomes[u].result in ("failed", "blocked")]
            if bad:
                outcomes[stage.name] = Outcome(stage.name, "blocked",
                                               detail=f"upstream {', '.join(sorted(bad))} failed")
                continue
            outcomes[stage.name] = _run_stage(session, stage, force)
    return [outcomes[s.name] for s in stages]


def _run_stage(session: Session, stage: Stage, force: bool) -> Outcome:
    console = session.console
    t0 = time.perf_counter()
    with stage_lock(session.cfg, stage.name, console):
        try:
            verdict, fp = session.judge(stage)
        except Exception as exc:  # noqa: BLE001 - reading the input versions failed: the stage fails
            err = session.failure(stage, exc)
            console.print(f"[red]{stage.name} failed (reading its inputs' versions):[/] {escape(str(err))}")
            return Outcome(stage.name, "failed", time.perf_counter() - t0, str(err), err)
        if not verdict.must_run and not force:
            console.print(f"[dim]{stage.name}: skipped, fresh: {escape(verdict.why())}[/]")
            return Outcome(stage.name, "skipped", time.perf_counter() - t0, f"fresh: {verdict.why()}")
        why = "forced (--force)" if force and not verdict.must_run else verdict.why()
        console.rule(f"[bold]{stage.name}[/]: {stage.description}")
        if verdict.state != "always":
            console.print(f"[dim]runs because: {escape(why)}[/]")
        try:
            detail = session.execute(stage, fp, verdict, rebuild=verdict.rebuild or force)
        except StageFailed as exc:
            console.print(f"[red]{stage.name} failed:[/] {escape(str(exc))}")
            return Outcome(stage.name, "failed", time.perf_counter() - t0, str(exc), exc)
    return Outcome(stage.name, "ok", time.perf_counter() - t0, detail)


def run_one(cfg: Config, name: str, console: Console, *, options: dict | None = None, record: bool = True,
            rebuild: bool = False) -> str:
    """Run stage ``name`` now (whatever its fingerprint says), for a stand-alone command.

    ``record=False`` for a partial run (a dbt ``--select``, a ticker subset): its fingerprint would
    claim more than it did. A changed definition still makes it a rebuild, so a command can never
    record new code as done after only an incremental build. Raises :class:`StageFailed`.
    """
    from lakehouse.lake import open_lake

    stage = graph.get(graph.pipeline(cfg), name)
    with open_lake(cfg) as lake, stage_lock(cfg, name, console):
        session = Session(cfg, lake, console)
        verdict, fp = session.judge(stage)
        return session.execute(stage, fp, verdict, rebuild=rebuild or verdict.rebuild, options=options,
                               record=record)


def plan(cfg: Config) -> list[Verdict]:
    """Each stage's state without running anything: fresh, stale (and why), or pending on a stale upstream."""
    from lakehouse.lake import open_lake

    stages = graph.pipeline(cfg)
    verdicts: dict[str, Verdict] = {}
    with open_lake(cfg) as lake:
        session = Session(cfg, lake, Console(quiet=True))
        for stage in stages:
            verdict, _ = session.judge(stage)
            stale_up = sorted(u for u in graph.upstream(stages, stage.name)
                              if verdicts[u].state in ("stale", "pending"))
            if verdict.state == "fresh" and stale_up:
                verdict = Verdict(stage.name, "pending", [f"runs if {', '.join(stale_up)} change(s) its outputs"])
            verdicts[stage.name] = verdict
    return [verdicts[s.name] for s in stages]
