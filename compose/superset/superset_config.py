"""Superset configuration of the compose stack (SUPERSET_CONFIG_PATH): everything secret comes from the
environment (compose/.env), nothing is written here."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URI"]
FEATURE_FLAGS = {"DASHBOARD_RBAC": True}
WTF_CSRF_ENABLED = True
