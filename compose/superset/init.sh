#!/bin/sh
# One-shot initialisation of Superset (the `superset-init` service): the metadata schema, the admin
# account and the roles. The admin password is read by Flask-AppBuilder's prompt from standard input
# (printf is a shell builtin), so it is on no command line.
set -eu
superset db upgrade
# an existing admin is left as it is (create-admin says so and exits 0)
printf '%s\n%s\n' "$SUPERSET_ADMIN_PASSWORD" "$SUPERSET_ADMIN_PASSWORD" | superset fab create-admin \
  --username "$SUPERSET_ADMIN_USER" --firstname Lakehouse --lastname Admin --email admin@lakehouse.invalid
superset init
