"""Superset configuration of the compose stack (SUPERSET_CONFIG_PATH): everything secret comes from the
environment (compose/.env), nothing is written here."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URI"]
FEATURE_FLAGS = {"DASHBOARD_RBAC": True}
WTF_CSRF_ENABLED = True
# nothing leaves the browser's machine: Superset's content security policy without the outside hosts of
# its default (telemetry pixel, map tiles, web fonts), as lakehouse/services/superset.py writes it for the
# local service (tests/unit/test_compose.py keeps the two equal). Behind a TLS proxy set force_https.
SCARF_ANALYTICS = False
THEME_FONT_URL_ALLOWED_DOMAINS = []
TALISMAN_ENABLED = True
TALISMAN_CONFIG = {
    "content_security_policy": {
        "base-uri": ["'self'"],
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "worker-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "object-src": "'none'",
        "style-src": ["'self'", "'unsafe-inline'"],
        "font-src": ["'self'", "data:"],
        "script-src": ["'self'", "'strict-dynamic'"],
    },
    "content_security_policy_nonce_in": ["script-src"],
    "force_https": False,
    "session_cookie_secure": False,
}
