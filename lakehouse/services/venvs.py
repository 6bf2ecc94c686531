"""The virtualenvs of their own that Airflow and Superset run from: their pins conflict with the core's
(and with each other's), so ``make setup`` builds ``.venvs/airflow`` and ``.venvs/superset`` and the
services start their commands from there. One place for finding them, their commands and the installed
version (which decides whether a database migration is due)."""

from __future__ import annotations

from pathlib import Path

from lakehouse.config import PACKAGE_ROOT


def venv_dir(setting: str | None, name: str) -> Path:
    """The configured virtualenv (``[<section>] venv``) or ``.venvs/<name>`` in the project."""
    return Path(setting).expanduser() if setting else PACKAGE_ROOT / ".venvs" / name


def command(venv: Path, name: str, section: str, error: type[Exception]) -> str:
    """The console script ``name`` of ``venv``; ``error`` naming the fix when it is missing."""
    exe = venv / "bin" / name
    if not exe.exists():
        raise error(f"{exe} does not exist: run `make setup` (or set [{section}] venv)")
    return str(exe)


def installed_version(venv: Path, distribution: str) -> str:
    """The ``<distribution>-<version>.dist-info`` name installed in ``venv`` ("unknown" when absent)."""
    found = sorted(venv.glob(f"lib/python*/site-packages/{distribution}-*.dist-info"))
    return found[-1].name if found else "unknown"
