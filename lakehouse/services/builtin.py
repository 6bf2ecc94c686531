"""Import every module that declares a service, so the registry knows them all."""

from lakehouse.services import objectstore  # noqa: F401
