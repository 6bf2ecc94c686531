"""Reliability drills on the state dir (embedded mode: the warehouse, the catalog database and dlt's working
dir all live in it), put on a small tmpfs of its own:

- the disk fills up during an ingest (before its commit, or after it while the stage's run is recorded):
  the command fails with a message naming the path and the cause (no traceback), every table still reads
  as it was (or, for a commit that landed, holds the whole load), and once space is freed the rerun
  loads everything;
- the state dir turns read-only (the tmpfs remounted ``ro``; root ignores permission bits, so ``chmod``
  would prove nothing): ``lakehouse ingest`` and ``lakehouse run`` fail with a message naming the path and
  the cause, and no table changes.

Mounting needs root (CAP_SYS_ADMIN); elsewhere the module is skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from lakehouse.config import load_config
from lakehouse.pipeline.runner import PAUSE_BEFORE_RECORD_ENV
from tests.conftest import isolated_env
from tests.drills_support import (
    assert_no_traceback,
    check_engines,
    cli,
    lake_tables,
    spawn,
)

SAMPLE_ROWS = 12_154
FIRST_END = "2010-12-31"  # the first load stops here; the drills' loads bring the rest
SECOND_END = "2011-12-31"
SECOND_ROWS = 10_794  # sample rows dated up to SECOND_END
TMPFS_SIZE = "96m"
#: Bytes left free on the state dir before the drill's ingest (less than its load needs).
LEFT_FREE = 32 * 1024
pytestmark = pytest.mark.timeout(600)


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the disk drills mount a tmpfs as the state dir, which needs root (CAP_SYS_ADMIN)")
    mnt = tmp_path_factory.mktemp("drills_disk") / "state"
    mnt.mkdir()
    mounted = _mount("-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mnt))
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    env = {**isolated_env(mnt / "home"), "COLUMNS": "200"}
    try:
        first = cli(env, "ingest", "--end", FIRST_END)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        yield {"env": env, "mnt": mnt, "cfg": load_config(env=env)}
    finally:
        _mount("-o", "remount,rw", str(mnt))
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _rows(cfg) -> dict[str, int]:  # noqa: ANN001 - Config
    return {name: check.rows for name, check in lake_tables(cfg).items()}


def _fill(mnt, left: int):  # noqa: ANN001, ANN202 - Path -> Path of the filler file
    filler = mnt / "filler"
    free = shutil.disk_usage(mnt).free
    subprocess.run(["fallocate", "-l", str(max(free - left, 0)), str(filler)], check=True, timeout=60)
    return filler


def test_full_disk_fails_clearly_and_corrupts_nothing(state) -> None:
    env, mnt, cfg = state["env"], state["mnt"], state["cfg"]
    before = _rows(cfg)
    assert 0 < before["raw.quotes"] < SAMPLE_ROWS
    filler = _fill(mnt, LEFT_FREE)
    try:
        full = cli(env, "ingest", "--end", SECOND_END)
        out = full.stdout + full.stderr
        assert full.returncode != 0, out[-4000:]
        assert_no_traceback(out)
        flat = " ".join(out.split())
        assert "No space left on device" in flat, out[-4000:]
        assert str(mnt) in flat, f"the message does not name the path:\n{out[-4000:]}"
    finally:
        filler.unlink()
    assert _rows(cfg) == before  # nothing half-written: every table reads as before

    rerun = cli(env, "ingest", "--end", SECOND_END)
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-2000:]
    after = lake_tables(cfg)
    assert after["raw.quotes"].rows == SECOND_ROWS
    check_engines(env, cfg, after)  # DuckDB and ClickHouse agree with pyiceberg; no duplicate keys


def test_disk_full_after_the_commit_fails_clearly_with_the_load_whole(state, tmp_path) -> None:
    """The disk fills up after the load's commit, while the stage's run is being recorded (the catalog
    database cannot grow; the drills' pause hook holds the run there while the test fills the disk): the
    command must still fail with the path and the cause (it ended in a traceback), with the load whole in
    raw.quotes, and the rerun finishes."""
    env, mnt, cfg = state["env"], state["mnt"], state["cfg"]
    before = _rows(cfg)
    child = spawn(env, "ingest", out=tmp_path / "ingest.out", extra={PAUSE_BEFORE_RECORD_ENV: "ingest:10"})
    filler = None
    try:
        child.wait_for(r"ingest: pausing")
        filler = _fill(mnt, 0)
        code, out = child.finish()
    finally:
        if filler is not None:
            filler.unlink()
    assert code != 0, out[-4000:]
    assert_no_traceback(out)
    flat = " ".join(out.split())
    assert "could not be recorded" in flat and "No space left on device" in flat and str(mnt) in flat, out[-4000:]
    after = _rows(cfg)
    assert after["raw.quotes"] == SAMPLE_ROWS  # the load (and dlt's bookkeeping) committed whole
    assert {k: v for k, v in after.items() if not k.startswith("raw.")} == {
        k: v for k, v in before.items() if not k.startswith("raw.")}
    rerun = cli(env, "ingest")
    assert rerun.returncode == 0, rerun.stdout[-4000:] + rerun.stderr[-2000:]
    final = lake_tables(cfg)
    assert final["raw.quotes"].rows == SAMPLE_ROWS
    check_engines(env, cfg, final)


def test_read_only_state_dir_fails_clearly_and_changes_nothing(state) -> None:
    env, mnt, cfg = state["env"], state["mnt"], state["cfg"]
    before = _rows(cfg)
    remount = _mount("-o", "remount,ro", str(mnt))
    assert remount.returncode == 0, remount.stderr
    try:
        for args in (("ingest",), ("run",)):
            proc = cli(env, *args)
            out = proc.stdout + proc.stderr
            assert proc.returncode != 0, f"{args}: {out[-4000:]}"
            assert_no_traceback(out)
            flat = " ".join(out.split())
            assert "Read-only file system" in flat, f"{args}: {out[-4000:]}"
            assert str(mnt) in flat, f"{args}: the message does not name the path:\n{out[-4000:]}"
    finally:
        assert _mount("-o", "remount,rw", str(mnt)).returncode == 0
    assert _rows(cfg) == before
