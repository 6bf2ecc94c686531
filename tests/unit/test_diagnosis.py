"""What a failed stage's message says about its cause: a full or read-only disk (path and cause) and the
services that stopped answering (name and URL)."""

from __future__ import annotations

import errno
import os

from lakehouse.config import load_config
from lakehouse.net import free_port
from lakehouse.pipeline.diagnosis import causes, disk_problem, unreachable
from lakehouse.pipeline.stage import StageFailed


def _cfg(tmp_path, **env: str):  # noqa: ANN202
    return load_config(env={"LAKEHOUSE_HOME": str(tmp_path / "home"), **env})


def test_a_disk_error_deep_in_the_chain_is_named_with_its_path(tmp_path) -> None:
    cfg = _cfg(tmp_path)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "home" / "warehouse" / "x.parquet"))
    try:
        try:
            raise full
        except OSError as inner:
            raise RuntimeError("Pipeline execution failed at step=load") from inner
    except RuntimeError as outer:
        wrapped = StageFailed("ingest", outer)
    assert full in list(causes(wrapped))
    text = disk_problem(cfg, wrapped)
    assert text.startswith(f"no space left on the file system of {full.filename}")
    assert "No space left on device" in text and "MiB free" in text
    assert disk_problem(cfg, RuntimeError("unrelated")) == ""


def test_a_read_only_error_without_a_path_names_the_state_dir(tmp_path) -> None:
    cfg = _cfg(tmp_path)
    text = disk_problem(cfg, OSError(errno.EROFS, os.strerror(errno.EROFS)))
    assert str(cfg.home) in text and "Read-only file system" in text


def test_services_that_do_not_answer_are_named_with_their_urls(tmp_path) -> None:
    dead = free_port()
    cfg = _cfg(tmp_path, LAKEHOUSE_GENERAL__MODE="services", LAKEHOUSE_OBJECTSTORE__PORT=str(free_port()),
               LAKEHOUSE_MLFLOW__PORT=str(free_port()))
    down = unreachable(cfg, f"http://127.0.0.1:{dead}")
    assert any(f"object store (S3) at {cfg.s3_endpoint} is not reachable" in d for d in down), down
    assert any(f"Iceberg catalog at http://127.0.0.1:{dead} is not reachable" in d for d in down), down
    assert any("MLflow server at" in d for d in down), down
    assert not any("MLflow" in d for d in unreachable(cfg, None, mlflow=False))
    embedded = _cfg(tmp_path)
    assert unreachable(embedded, None) == []  # a file warehouse and a local MLflow store need no service


def test_the_context_leads_the_stage_message() -> None:
    err = StageFailed("predict", ConnectionError("refused"), context="the object store (S3) at http://h:1 is down")
    assert str(err) == ("predict: the object store (S3) at http://h:1 is down. The stage stopped with: "
                        "ConnectionError: refused")
    assert isinstance(err.cause, ConnectionError)
