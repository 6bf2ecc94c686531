#!/usr/bin/env bash
# Create .venvs/{core,airflow,superset} from the committed lockfiles with uv. Idempotent: a second
# run only audits the environments and prints that nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv (pip)"
  python3 -m pip install -q uv
fi
UV=$(command -v uv)
PY=${LAKEHOUSE_PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
export UV_LINK_MODE=copy

sync_env() {  # name lockfile...
  local name=$1 dir=.venvs/$1; shift
  if [ ! -x "$dir/bin/python" ]; then
    echo "setup: creating $dir"
    "$UV" venv -q --python "$PY" "$dir"
  fi
  local out
  out=$(VIRTUAL_ENV="$dir" "$UV" pip sync "$@" 2>&1) || { echo "$out"; echo "setup: $name: uv pip sync failed"; exit 1; }
  local marker=$dir/.bytecode-compiled stamp
  stamp=$(cat "$@" | sha256sum | cut -c1-16)
  if grep -qE '^(Installed|Uninstalled)' <<<"$out"; then
    echo "setup: $name: $(grep -E '^(Installed|Uninstalled)' <<<"$out" | tr '\n' ' ')"
  else
    echo "setup: $name: up to date ($(tail -n 1 <<<"$out"))"
  fi
  # Compile .pyc files once per lockfile: where PYTHONDONTWRITEBYTECODE is set (as on CI machines)
  # Python would otherwise recompile every imported module in every process (seconds per CLI call).
  if [ "$(cat "$marker" 2>/dev/null)" != "$stamp" ] || grep -qE '^(Installed|Uninstalled)' <<<"$out"; then
    "$dir/bin/python" -m compileall -qq -j 0 "$dir/lib" >/dev/null || true
    echo "$stamp" > "$marker"
    echo "setup: $name: bytecode compiled"
  fi
}

# core: the locked dependencies plus the project itself, editable (requirements/project.txt)
sync_env core requirements/core.txt requirements/project.txt
# the project's own modules too (their __pycache__ folders are git-ignored)
.venvs/core/bin/python -m compileall -qq -j 0 lakehouse catalog ml >/dev/null || true
sync_env airflow requirements/airflow.txt
sync_env superset requirements/superset.txt
echo "setup: done. CLI: .venvs/core/bin/lakehouse (or: source .venvs/core/bin/activate)"
