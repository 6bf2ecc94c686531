"""``python -m lakehouse.clickhouse [--host H] [--port P]``: serve the ClickHouse front (used by the
supervisor and by temporary fronts; ``lakehouse clickhouse serve`` is the same)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from lakehouse.clickhouse.front import serve
from lakehouse.config import ConfigError, get_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakehouse.clickhouse", description=__doc__)
    parser.add_argument("--host", default=None, help="bind address (default: [clickhouse] host)")
    parser.add_argument("--port", type=int, default=None, help="port (default: [clickhouse] port)")
    parser.add_argument("--exit-with-parent", type=int, default=None, metavar="PID",
                        help="stop (gracefully) when process PID, our parent, is gone (temporary fronts)")
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        _watch_parent(args.exit_with_parent)
    try:
        cfg = get_config()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.general.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(cfg, args.host, args.port, echo=lambda m: print(m, flush=True))
    return 0


def _watch_parent(pid: int) -> None:
    """SIGTERM ourselves once the parent ``pid`` exits (we get re-parented), so an orphaned temporary
    front never keeps the chdb data path locked."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
