"""Import every module that declares a service, so the registry knows them all.

A service module ``lakehouse.services.<name>`` calls ``register(Service(...))`` at import time;
modules not written yet are skipped.
"""

import importlib

SERVICE_MODULES = ("objectstore", "catalog", "clickhouse", "mlflow", "airflow", "superset")

for _name in SERVICE_MODULES:
    try:
        importlib.import_module(f"lakehouse.services.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"lakehouse.services.{_name}":
            raise
