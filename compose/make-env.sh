#!/bin/sh
# Write compose/.env from compose/.env.example with every change-me replaced by a fresh secret, as the
# comments of .env.example say (openssl rand; the Fernet key in url-safe base64). Mode 0600; an existing
# .env is never overwritten. Usage: sh compose/make-env.sh [target, default: compose/.env]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${1:-$here/.env}
if [ -e "$target" ]; then
  echo "make-env: $target exists; not overwriting it (remove it first to start over)" >&2
  exit 1
fi
umask 077
tmp="$target.tmp.$$"
trap 'rm -f "$tmp"' EXIT
while IFS= read -r line; do
  case "$line" in
    AIRFLOW_FERNET_KEY=change-me) line="AIRFLOW_FERNET_KEY=$(openssl rand -base64 32 | tr '+/' '-_')" ;;
    MINIO_ROOT_USER=change-me) line="MINIO_ROOT_USER=lh$(openssl rand -hex 8)" ;;
    *=change-me) line="${line%%=*}=$(openssl rand -hex 24)" ;;
  esac
  printf '%s\n' "$line"
done < "$here/.env.example" > "$tmp"
mv "$tmp" "$target"
trap - EXIT
echo "make-env: wrote $target (mode 0600); keep it out of version control"
