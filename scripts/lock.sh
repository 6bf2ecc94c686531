#!/usr/bin/env bash
# Regenerate the lockfiles under requirements/ (needs uv and PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements/core.txt
uv pip compile -q requirements/airflow.in --python-version 3.11 -o requirements/airflow.txt
uv pip compile -q requirements/superset.in --python-version 3.11 -o requirements/superset.txt
echo "lock: requirements/core.txt airflow.txt superset.txt regenerated"
