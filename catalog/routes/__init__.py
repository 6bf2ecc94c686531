"""The REST API, one router per resource. ``RESOURCE_ROUTERS`` are the routers whose routes
``/v1/config`` lists as the catalog's endpoints (config, OAuth and health are not listed)."""

from __future__ import annotations

from catalog.routes import config, namespaces, tables, transactions, views

RESOURCE_ROUTERS = (namespaces.router, tables.router, views.router, transactions.router)
ROUTERS = (config.router, *RESOURCE_ROUTERS)
