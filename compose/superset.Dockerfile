# The Superset image: Superset 6.1 with clickhouse-connect from requirements/superset.txt, plus the
# PostgreSQL driver of its metadata database (compose/requirements/superset-postgres.txt). Only the
# committed lockfiles are installed (--no-deps: exactly the pinned set; `pip check` proves it whole).
FROM python:3.11.13-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    SUPERSET_TELEMETRY=false SCARF_ANALYTICS=false DO_NOT_TRACK=1
WORKDIR /app
COPY requirements/superset.txt requirements/
COPY compose/requirements/superset-postgres.txt compose/requirements/
RUN python -m venv /opt/superset-venv \
    && /opt/superset-venv/bin/pip install --no-deps -r requirements/superset.txt \
        -r compose/requirements/superset-postgres.txt \
    && /opt/superset-venv/bin/pip check \
    && useradd --system --uid 10002 --home-dir /app/superset_home --create-home superset
COPY compose/superset /app/compose/superset
ENV PATH=/opt/superset-venv/bin:$PATH SUPERSET_HOME=/app/superset_home FLASK_APP=superset
USER superset
