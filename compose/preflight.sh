#!/bin/sh
# Refuse to start the compose stack while compose/.env holds a placeholder, an empty or a weak secret
# (the one-shot `preflight` service every server depends on). Names the variables, never their values.
# Usage: preflight.sh (reads the environment); exit 0 = all set, 1 = refused.
set -u

SECRETS="MINIO_ROOT_PASSWORD POSTGRES_PASSWORD CATALOG_DB_PASSWORD MLFLOW_DB_PASSWORD AIRFLOW_DB_PASSWORD
SUPERSET_DB_PASSWORD CATALOG_TOKEN_SECRET CATALOG_PLATFORM_SECRET CLICKHOUSE_PASSWORD CLICKHOUSE_DASHBOARD_PASSWORD
AIRFLOW_ADMIN_PASSWORD AIRFLOW_FERNET_KEY AIRFLOW_API_SECRET_KEY AIRFLOW_JWT_SECRET SUPERSET_ADMIN_PASSWORD
SUPERSET_SECRET_KEY"
MIN_LENGTH=16
problems=""

refuse() {  # name, reason
  problems="${problems}  $1: $2
"
}

check() {  # name, minimum length
  eval "value=\${$1-}"
  lowered=$(printf '%s' "$value" | tr '[:upper:]' '[:lower:]')
  case "$lowered" in
    "") refuse "$1" "not set"; return ;;
    *change-me* | *changeme* | minioadmin | password* | secret* | admin*)
      refuse "$1" "still a placeholder or a well-known default: generate it (see .env.example)"; return ;;
  esac
  case "$value" in
    *[!A-Za-z0-9_=-]*) refuse "$1" "only letters, digits, '_', '-' and '=' (it goes into URLs)"; return ;;
  esac
  if [ "${#value}" -lt "$2" ]; then
    refuse "$1" "shorter than $2 characters"
  fi
}

check MINIO_ROOT_USER 3
for name in $SECRETS; do
  check "$name" "$MIN_LENGTH"
done
# Airflow's Fernet key: 32 bytes in url-safe base64 (44 characters ending in '=')
key=${AIRFLOW_FERNET_KEY-}
case "$key" in
  *[!A-Za-z0-9_=-]* | "") ;;
  *) if [ "${#key}" -ne 44 ] || [ "${key%=}" = "$key" ]; then
       refuse AIRFLOW_FERNET_KEY "not a Fernet key: openssl rand -base64 32 | tr '+/' '-_'"
     fi ;;
esac

if [ -n "$problems" ]; then
  printf 'preflight: refusing to start the lakehouse stack; fix compose/.env:\n%s' "$problems" >&2
  exit 1
fi
echo "preflight: compose/.env is complete (no placeholder left)"
