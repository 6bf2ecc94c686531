#!/bin/sh
# First start of the PostgreSQL volume (docker-entrypoint-initdb.d): one role and one database per
# server. The passwords come from the environment and reach psql as \set lines on its standard input
# (printf is a shell builtin), never on a command line. preflight.sh limits them to [A-Za-z0-9_=-], so
# they need no quoting inside '...'.
set -eu
for name in catalog mlflow airflow superset; do
  var=$(printf '%s_DB_PASSWORD' "$name" | tr '[:lower:]' '[:upper:]')
  eval "password=\${$var}"
  {
    printf '\\set role %s\n\\set pw %s\n' "$name" "'$password'"
    cat <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'pw';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
  } | psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres
done
