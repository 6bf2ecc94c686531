# The Airflow image: Airflow 3.3 in its own virtualenv (/opt/airflow-venv, requirements/airflow.txt plus
# the PostgreSQL drivers of compose/requirements/airflow-postgres.txt), beside the core environment
# (/venv, requirements/core.txt) whose `lakehouse` CLI the DAG tasks run: the same stage code as a laptop.
# Only the committed lockfiles are installed (--no-deps: exactly the pinned set; `pip check` proves it whole).
FROM python:3.11.13-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    RUNTIME__DLTHUB_TELEMETRY=false DBT_SEND_ANONYMOUS_USAGE_STATS=false DO_NOT_TRACK=1 \
    MLFLOW_DISABLE_TELEMETRY=true MLFLOW_ENABLE_TELEMETRY=false SCARF_ANALYTICS=false
WORKDIR /app
COPY requirements/core.txt requirements/airflow.txt requirements/
COPY compose/requirements/airflow-postgres.txt compose/requirements/
RUN python -m venv /venv \
    && /venv/bin/pip install --no-deps -r requirements/core.txt \
    && /venv/bin/pip check \
    && python -m venv /opt/airflow-venv \
    && /opt/airflow-venv/bin/pip install --no-deps -r requirements/airflow.txt \
        -r compose/requirements/airflow-postgres.txt \
    && /opt/airflow-venv/bin/pip check
COPY . /app
RUN /venv/bin/pip install --no-deps -r requirements/project.txt \
    && useradd --system --uid 10001 --home-dir /opt/airflow --create-home lakehouse \
    && mkdir -p /opt/airflow/logs /opt/airflow/run /state \
    && chown -R lakehouse /opt/airflow /state
ENV PATH=/opt/airflow-venv/bin:$PATH AIRFLOW_HOME=/opt/airflow LAKEHOUSE_HOME=/state
# the same uid as the platform image: both write the shared lakehouse-state volume
USER lakehouse
WORKDIR /opt/airflow
ENTRYPOINT ["/bin/sh", "/app/compose/airflow/entrypoint.sh"]
