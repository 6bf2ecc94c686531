"""Request bodies of the REST API as documented in the OpenAPI schema.

These are deliberately loose (nested Iceberg structures are plain objects): the service parses
them with pyiceberg's own models and answers 400 with a message naming the problem. Strings that are
not valid Unicode (a JSON ``"\\ud800"`` escape decodes to a lone surrogate, which no database, file
name or JSON writer accepts) are refused here, once for every body.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.names import is_valid_unicode


def _has_invalid_text(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return not is_valid_unicode(value)
    if depth > 64:
        return False  # deeper structures are parsed (and refused) by pyiceberg's models
    if isinstance(value, dict):
        return any(_has_invalid_text(k, depth + 1) or _has_invalid_text(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_invalid_text(v, depth + 1) for v in value)
    return False


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if _has_invalid_text(data):
            raise ValueError("the body contains text that is not valid Unicode (a lone surrogate)")
        return data


class CreateNamespaceRequest(_Body):
    namespace: list[str]
    properties: dict[str, str] = Field(default_factory=dict)


class UpdateNamespacePropertiesRequest(_Body):
    removals: list[str] = Field(default_factory=list)
    updates: dict[str, str] = Field(default_factory=dict)


class CreateTableRequest(_Body):
    name: str
    location: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    partition_spec: dict[str, Any] | None = Field(default=None, alias="partition-spec")
    write_order: dict[str, Any] | None = Field(default=None, alias="write-order")
    stage_create: bool = Field(default=False, alias="stage-create")
    properties: dict[str, str] = Field(default_factory=dict)


class RegisterTableRequest(_Body):
    name: str
    metadata_location: str = Field(alias="metadata-location")
    overwrite: bool = False


class TableIdentifier(_Body):
    namespace: list[str]
    name: str


class RenameTableRequest(_Body):
    source: TableIdentifier
    destination: TableIdentifier


class CommitTableRequest(_Body):
    identifier: TableIdentifier | None = None
    requirements: list[dict[str, Any]] = Field(default_factory=list)
    updates: list[dict[str, Any]] = Field(default_factory=list)


class CommitTransactionRequest(_Body):
    table_changes: list[CommitTableRequest] = Field(alias="table-changes")


class CreateViewRequest(_Body):
    name: str
    location: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    view_version: dict[str, Any] = Field(alias="view-version")
    properties: dict[str, str] = Field(default_factory=dict)


class RegisterViewRequest(_Body):
    name: str
    metadata_location: str = Field(alias="metadata-location")


class CommitViewRequest(_Body):
    identifier: TableIdentifier | None = None
    requirements: list[dict[str, Any]] = Field(default_factory=list)
    updates: list[dict[str, Any]] = Field(default_factory=list)


class ReportMetricsRequest(_Body):
    report_type: str | None = Field(default=None, alias="report-type")
