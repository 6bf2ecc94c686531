"""Stage fingerprints: what a stage consumed, and whether it must run again.

A fingerprint is the sha256 of four parts, each also kept on its own so a rerun can say *why*:

- ``inputs``: the version of every asset the stage reads (:mod:`lakehouse.pipeline.assets`);
- ``code``: the sha256 of every file of the stage's code and project (dbt models, macros, ML code);
- ``packages``: the installed versions of the libraries that do the stage's work (dbt, DuckDB, ...);
- ``config``: the values of the configuration keys the stage depends on.

:func:`assess` compares the current parts with the last successful run's record: a stage is
*fresh* when all four are unchanged and its outputs still have the versions it left them at;
otherwise it is *stale*, with one reason per difference. A changed definition (code, packages,
config) marks the run as a rebuild, which incremental stages turn into a full refresh.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from lakehouse.config import PACKAGE_ROOT, SECRET_KEYS, Config
from lakehouse.pipeline.assets import VOLATILE
from lakehouse.pipeline.graph import Stage

_SKIP_PARTS = {"__pycache__", "target", "logs", "dbt_packages", ".pytest_cache"}


@lru_cache(maxsize=1024)
def _file_hash(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def code_files(patterns: tuple[str, ...], root: Path = PACKAGE_ROOT) -> dict[str, str]:
    """``{relative path: sha256[:16]}`` of every file matched by ``patterns`` (paths or globs under ``root``)."""
    out: dict[str, str] = {}
    for pattern in patterns:
        # a trailing "**" matches only directories in pathlib: "dir/**" means every file below dir
        glob = pattern + "/*" if pattern.endswith("**") else pattern
        matches = [root / pattern] if not any(c in pattern for c in "*?[") else sorted(root.glob(glob))
        for p in matches:
            if not p.is_file() or _SKIP_PARTS & set(p.relative_to(root).parts) or p.suffix in (".pyc", ".pyo"):
                continue
            st = p.stat()
            out[p.relative_to(root).as_posix()] = _file_hash(p, st.st_mtime_ns, st.st_size)
    return dict(sorted(out.items()))


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of distributions ``names`` ("missing" for one that is not installed)."""
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "missing"
    return out


def config_values(cfg: Config, keys: tuple[str, ...]) -> dict[str, Any]:
    """The values of ``keys`` (a section prefix selects every key under it); secrets never included."""
    flat = cfg.flat()
    out: dict[str, Any] = {}
    for key in keys:
        hits = {k: v for k, v in flat.items() if k == key or k.startswith(key + ".")}
        if not hits:
            raise KeyError(f"stage config key {key!r} is not a configuration key")
        out.update({k: v for k, v in hits.items() if k not in SECRET_KEYS})
    return dict(sorted(out.items()))


def digest(parts: dict[str, Any]) -> str:
    """sha256 of a JSON document (keys sorted)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Fingerprint:
    """What one execution of a stage consumed."""

    inputs: dict[str, str | None]
    code: dict[str, str]
    packages: dict[str, str]
    config: dict[str, Any]

    @property
    def value(self) -> str:
        return digest({"inputs": self.inputs, "code": self.code, "packages": self.packages, "config": self.config})


def fingerprint(cfg: Config, stage: Stage, inputs: dict[str, str | None]) -> Fingerprint:
    """The stage's fingerprint given the current versions of its inputs."""
    return Fingerprint(dict(inputs), code_files(stage.code), package_versions(stage.packages),
                       config_values(cfg, stage.config))


@dataclass
class Record:
    """The last successful run of a stage (a row of ``pipeline.stage_runs``)."""

    stage: str
    fingerprint: str
    inputs: dict[str, str | None]
    outputs: dict[str, str | None]
    code: dict[str, str]
    packages: dict[str, str]
    config: dict[str, Any]
    finished_at: Any = None
    detail: str = ""
    run_id: str = ""


@dataclass
class Verdict:
    """Whether a stage must run, and why."""

    stage: str
    state: str  # fresh | stale | always
    reasons: list[str] = field(default_factory=list)
    rebuild: bool = False  # the definition changed: incremental stages rebuild from scratch

    @property
    def must_run(self) -> bool:
        return self.state != "fresh"

    def why(self) -> str:
        return "; ".join(self.reasons)


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def _short(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def assess(stage: Stage, current: Fingerprint, outputs: dict[str, str | None], record: Record | None) -> Verdict:
    """Compare the current fingerprint and outputs with the last successful run."""
    if stage.always:
        return Verdict(stage.name, "always", ["runs every time"])
    if record is None:
        return Verdict(stage.name, "stale", ["never ran successfully"], rebuild=True)
    reasons: list[str] = []
    rebuild = False
    if files := _changed(record.code, current.code):
        reasons.append(f"code changed: {_short(files)}")
        rebuild = True
    if pkgs := _changed(record.packages, current.packages):
        reasons.append("packages changed: " + _short([f"{p} {record.packages.get(p)} -> {current.packages.get(p)}"
                                                      for p in pkgs]))
        rebuild = True
    if keys := _changed(record.config, current.config):
        reasons.append(f"config changed: {_short(keys)}")
        rebuild = True
    for asset in sorted(set(record.inputs) | set(current.inputs)):
        old, new = record.inputs.get(asset), current.inputs.get(asset)
        if new == VOLATILE:
            reasons.append(f"{asset} is a live source: checked for new data every run")
        elif old != new:
            reasons.append(f"new input {asset}: {old or 'none'} -> {new or 'none'}")
    for asset in sorted(outputs):
        old, new = record.outputs.get(asset), outputs.get(asset)
        if old != new:
            what = "is missing" if new is None else f"changed outside this stage ({old or 'none'} -> {new})"
            reasons.append(f"output {asset} {what}")
    if not reasons:
        when = f" at {record.finished_at:%Y-%m-%d %H:%M:%S}" if hasattr(record.finished_at, "strftime") else ""
        return Verdict(stage.name, "fresh", [f"inputs, code and config unchanged since its last run{when}"])
    return Verdict(stage.name, "stale", reasons, rebuild=rebuild)
