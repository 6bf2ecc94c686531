"""What a stage function receives and how it fails.

A stage function is ``run(ctx: StageContext) -> str``: it does its work on ``ctx.cfg`` (the lake
already open as ``ctx.lake``), prints progress and results to ``ctx.console``, and returns a one-line
detail for the run summary. It raises :class:`StageFailed` (or any exception, which the runner wraps
in one) when it could not finish; a failed stage records no fingerprint, so the next run repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from lakehouse.config import Config


class StageFailed(RuntimeError):
    """A stage could not finish: which stage, the cause (message or exception), and its log file."""

    def __init__(self, stage: str, cause: str | BaseException, log_path: Path | str | None = None,
                 context: str = "") -> None:
        self.stage = stage
        self.cause = cause
        self.log_path = Path(log_path) if log_path else None
        self.context = context  # what most likely caused it, e.g. the object store no longer answers
        text = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        if isinstance(cause, BaseException) and type(cause).__module__.startswith(("lakehouse", "ml", "catalog")):
            text = str(cause)  # our own errors carry a complete message
        where = f" (log {self.log_path})" if self.log_path else ""
        lead = f"{context}. The stage stopped with: " if context else ""
        super().__init__(f"{stage}: {lead}{text}{where}")


@dataclass
class StageContext:
    """One execution of one stage.

    ``rebuild`` is true when the stage runs because its code, dependencies or configuration changed
    (or ``--force``): incremental stages then rebuild from scratch, since an incremental build only
    notices new data, not a new definition. ``options`` carries command-line options of the
    stand-alone commands (``select``, ``models``, ...); ``reasons`` says why the stage runs.
    """

    cfg: Config
    console: Console
    lake: Any = None  # lakehouse.lake.LakeHandle, open for the whole run
    stage: str = ""
    rebuild: bool = False
    reasons: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        """A command-line option of this execution (``default`` when not given)."""
        value = self.options.get(name)
        return default if value is None else value
