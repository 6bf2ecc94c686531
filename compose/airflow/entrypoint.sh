#!/bin/sh
# Entrypoint of every Airflow container: what lakehouse/services/airflow.py prepares on a laptop, from
# the environment, then the Airflow command given.
# - the resolved pipeline graph the DAG file reads ($LAKEHOUSE_DAGS_SPEC), from the core environment;
# - SimpleAuthManager's passwords file (0600), from AIRFLOW_ADMIN_PASSWORD: never on a command line.
set -eu
umask 077
spec=${LAKEHOUSE_DAGS_SPEC:?}
"${LAKEHOUSE_CLI:?}" plan --format json > "$spec.tmp"
mv "$spec.tmp" "$spec"
python - <<'PY'
import json, os
path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
with open(path + ".tmp", "w") as f:
    json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["LAKEHOUSE_AIRFLOW__ADMIN_PASSWORD"]}, f)
os.replace(path + ".tmp", path)
PY
exec "$@"
