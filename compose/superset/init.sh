#!/bin/sh
# One-shot initialisation of Superset (the `superset-init` service): the metadata schema, the admin
# account and the roles. The admin password is read by Flask-AppBuilder's prompt from standard input
# (printf is a shell builtin), so it is on no command line.
set -eu
superset db upgrade
# create-admin leaves an existing admin as it is (and exits 0); reset-password then applies a rotated
# SUPERSET_ADMIN_PASSWORD, so the provisioning's login keeps working after a rotation
printf '%s\n%s\n' "$SUPERSET_ADMIN_PASSWORD" "$SUPERSET_ADMIN_PASSWORD" | superset fab create-admin \
  --username "$SUPERSET_ADMIN_USER" --firstname Lakehouse --lastname Admin --email admin@lakehouse.invalid
printf '%s\n%s\n' "$SUPERSET_ADMIN_PASSWORD" "$SUPERSET_ADMIN_PASSWORD" | superset fab reset-password \
  --username "$SUPERSET_ADMIN_USER"
superset init
