"""Catalog errors and their REST ``ErrorModel`` form (``{"error": {"message", "type", "code"}}``)."""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """An error the REST API reports with the spec's status code and exception type name."""

    status: int = 500
    type: str = "ServerErrorException"

    def __init__(self, message: str, *, status: int | None = None, type_: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type_ is not None:
            self.type = type_

    def body(self) -> dict[str, Any]:
        """The spec's ErrorModel body."""
        return error_body(self.message, self.type, self.status)


def error_body(message: str, type_: str, code: int) -> dict[str, Any]:
    """An ``IcebergErrorResponse`` JSON body."""
    return {"error": {"message": message, "type": type_, "code": code}}


class BadRequest(CatalogError):
    status, type = 400, "BadRequestException"


class ValidationFailed(CatalogError):
    status, type = 400, "ValidationException"


class NotAuthorized(CatalogError):
    status, type = 401, "NotAuthorizedException"


class AuthorizationExpired(CatalogError):
    status, type = 419, "AuthenticationTimeoutException"


class Forbidden(CatalogError):
    status, type = 403, "ForbiddenException"


class NoSuchNamespace(CatalogError):
    status, type = 404, "NoSuchNamespaceException"


class NoSuchTable(CatalogError):
    status, type = 404, "NoSuchTableException"


class NoSuchView(CatalogError):
    status, type = 404, "NoSuchViewException"


class NotFound(CatalogError):
    status, type = 404, "NotFoundException"


class NotAcceptable(CatalogError):
    status, type = 406, "UnsupportedOperationException"


class AlreadyExists(CatalogError):
    status, type = 409, "AlreadyExistsException"


class NamespaceNotEmpty(CatalogError):
    status, type = 409, "NamespaceNotEmptyException"


class CommitFailed(CatalogError):
    status, type = 409, "CommitFailedException"


class ServiceUnavailable(CatalogError):
    status, type = 503, "ServiceUnavailableException"


class CommitStateUnknown(CatalogError):
    status, type = 500, "CommitStateUnknownException"


class PayloadTooLarge(CatalogError):
    status, type = 413, "PayloadTooLargeException"


class UnsupportedMediaType(CatalogError):
    status, type = 415, "UnsupportedMediaTypeException"
