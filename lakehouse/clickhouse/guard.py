"""Which statements each account may run on the front, decided with ClickHouse's own parser.

Why the front judges SQL itself: chdb is ClickHouse as a library, without users, grants or a sandbox.
``file('/abs/path')`` reads any file the process can read (``user_files_path`` is ignored for absolute
paths and ``readonly=2`` does not stop it), ``INSERT INTO FUNCTION file(...)``/``INTO OUTFILE`` write
files, ``url()``/``s3()``/``remote()``/``mysql()``... reach the network, and one query string may hold
several statements, which chdb all runs. Matching keywords cannot tell a table function from a column
of the same name or see through comments, quoting and nesting, so every request is parsed by chdb:

1. ``SELECT parseQueryToJSON({q:String})``: ClickHouse's parser with a structured dump (engines,
   table functions and where they stand, ``SETTINGS`` clauses, ``INTO OUTFILE``, ``FROM INFILE``). It
   refuses multi-statements, so a request is one statement (a trailing ``;`` is allowed).
2. ``EXPLAIN AST``: the same parser's tree dump, which every statement supports. Statements the JSON
   dump cannot serialize (DESCRIBE, EXISTS, SHOW CREATE, named collections) are judged on it alone,
   strictly (no SETTINGS, no lake readers, the tree's shape checked); for the others it is a second,
   independent listing the deny rules run on too, so a node the JSON dump left out is still seen.
3. The rules below. Anything not understood is refused: allow-lists of statement kinds per account,
   of table functions, table and database engines, of text-valued settings; deny-lists of scalar
   functions and of other settings that reach outside (all functions and settings are too many and
   too version-dependent for an allow-list).

Both parses run on the handle that will execute the statement, with its settings in effect, and the
settings that change the parser (``dialect``, ``implicit_select``, ...) can never be changed. Inline
INSERT data never reaches the parser (it is streamed to chdb as data, see engine.py), and every handle
is opened with expression evaluation in ``VALUES`` data switched off (see :data:`HANDLE_SETTINGS`).

Rules:

- accounts: the *writer* (dbt, the platform) may run DDL/DML; the *reader* (dashboards) only SELECT,
  SHOW, DESCRIBE, EXISTS, EXPLAIN, SET and USE, reading the marts database, ``information_schema``
  and an allow-list of ``system`` tables (what clickhouse-connect, SQLAlchemy's ``clickhousedb``
  inspector and Superset read). A read-only request (HTTP GET, ``readonly=1``) gets the reader's
  statement kinds whatever the account.
- refused for everyone: table functions other than in-memory generators (``numbers``, ``values``,
  ``view``, ...); ``file()`` (also the scalar function), ``dictGet*``, AI and introspection functions,
  ``hasColumnInTable``; ``INTO OUTFILE`` / ``FROM INFILE``; ``File``/``URL``/``S3``/... engines
  (only MergeTree family, Memory, Log family, Null, Set, Join and views), database engines other than
  Atomic/Ordinary/Memory; dictionaries, backups, ``ATTACH``, ``SYSTEM``, ``KILL``, access control,
  SQL functions, ``ALTER ... FETCH/FREEZE``; ``system.named_collections`` (it holds the object store
  keys); settings that read or write files, reach the network, add SQL behind the parser's back
  (``select``, ``filter``, ``additional_table_filters``), switch the database or change the parser;
  ``SET param_<name>`` (parameters are checked from the request).
- the lake readers dbt_dwh needs (writer, in a FROM only): ``icebergLocal('<path>')`` with a path
  inside the local warehouse, ``icebergS3(<collection>, url = '<object store>/<warehouse>/...')``
  with the platform's named collection; only ``SETTINGS iceberg_metadata_file_path`` besides.
- named collections: only the writer, only the platform's collection, only credential keys.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Role = Literal["writer", "reader"]

#: Name of the ClickHouse named collection holding the object store credentials (created by the
#: transform-dwh stage, used by ``icebergS3``; dbt_dwh's ``lake_s3_collection`` var must match).
LAKE_S3_COLLECTION = "lake_s3"

#: Settings every client handle is opened with (and that no request may change): ``VALUES`` data is
#: parsed as data only, never evaluated (it could call ``file()`` or run a subquery).
HANDLE_SETTINGS = {
    "input_format_values_interpret_expressions": "0",
    "input_format_values_deduce_templates_of_expressions": "0",
}

#: Root statement types (as ClickHouse's parser names them) a reader may run.
READ_KINDS = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "ShowTablesQuery", "ShowColumnsQuery",
    "ShowIndexesQuery", "ExplainQuery", "SetQuery", "UseQuery",
    # judged on EXPLAIN AST (no JSON dump):
    "DescribeQuery", "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery", "ExistsDictionaryQuery",
    "ShowCreateTableQuery", "ShowCreateViewQuery", "ShowCreateDatabaseQuery", "ShowCreateDictionaryQuery",
    "ShowFunctions", "ShowEngineQuery",
})
#: ... and what the writer may run besides.
WRITE_KINDS = READ_KINDS | {
    "InsertQuery", "CreateQuery", "AlterQuery", "DropQuery", "RenameQuery", "OptimizeQuery", "DeleteQuery",
    "UpdateQuery", "CheckTableQuery", "CreateNamedCollectionQuery", "DropNamedCollectionQuery",
}
#: Types parseQueryToJSON cannot dump, judged on EXPLAIN AST alone (matched on the type's prefix).
EXPLAIN_ONLY_KINDS = ("DescribeQuery", "Exists", "ShowCreate", "ShowFunctions", "ShowEngineQuery",
                      "CreateNamedCollectionQuery", "DropNamedCollectionQuery")

#: Table functions that only generate data in memory or wrap a subquery: allowed anywhere.
SAFE_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generaterandom", "generateseries", "generate_series",
    "values", "sqlstandardvalues", "null", "view", "format", "primes",
})
#: The lake readers (writer only, checked arguments).
ICEBERG_LOCAL = "iceberglocal"
ICEBERG_S3 = "icebergs3"
#: Table functions known to reach files, processes or the network, refused even if chdb did not list them.
KNOWN_OUTSIDE_TABLE_FUNCTIONS = frozenset({
    "file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn", "hdfs", "hdfscluster",
    "remote", "remotesecure", "cluster", "clusterallreplicas", "mysql", "postgresql", "sqlite", "mongodb",
    "redis", "odbc", "jdbc", "executable", "input", "dictionary", "merge", "loop", "filesystem", "python",
    "azureblobstorage", "azureblobstoragecluster", "iceberg", "icebergcluster", "iceberghdfs", "icebergazure",
    "iceberglocalcluster", "icebergs3cluster", "deltalake", "hudi", "paimon", "ytsaurus", "arrowflight",
    "prometheusquery", "prometheusqueryrange", "fuzzjson", "fuzzquery", "timeseriesdata", "mergetreeindex",
})
#: Scalar functions that reach outside (lower case; plus the prefixes below).
DENIED_FUNCTIONS = frozenset({
    "file", "hascolumnintable", "catboostevaluate", "modelevaluate", "evalmlmethod", "addresstoline",
    "addresstolinewithinlines", "addresstosymbol", "demangle", "joinget", "joingetornull", "showcertificate",
})
DENIED_FUNCTION_PREFIXES = ("dict", "ai", "__")  # dictGet*/dictHas (dictionary sources), AI* (LLM APIs), internals
#: Table engines a writer may create.
ALLOWED_TABLE_ENGINES = frozenset({
    "mergetree", "replacingmergetree", "summingmergetree", "aggregatingmergetree", "collapsingmergetree",
    "versionedcollapsingmergetree", "coalescingmergetree", "memory", "log", "tinylog", "stripelog", "null",
    "set", "join", "view", "materializedview",
})
ALLOWED_DATABASE_ENGINES = frozenset({"atomic", "ordinary", "memory"})
#: ALTER commands that reach other machines or write outside the table's data.
DENIED_ALTER_COMMANDS = frozenset({
    "FETCH_PARTITION", "FREEZE_PARTITION", "FREEZE_ALL", "UNFREEZE_PARTITION", "UNFREEZE_ALL",
})
#: Settings no request may change (lower case). They change the parser; add SQL the parser never sees;
#: read or write files or reach the network; enable introspection; pick a default engine; or undo
#: :data:`HANDLE_SETTINGS`. Text-valued settings are refused unless listed in :data:`SAFE_TEXT_SETTINGS`
#: (several hold SQL, a path, a URL or another database: ``select``, ``filter``, ``database``, ...).
DENIED_SETTINGS = frozenset({
    "dialect", "polyglot_dialect", "implicit_select", "implicit_table_at_top_level", "enable_json_ast_dialect",
    "enable_trino_dialect", "allow_experimental_kusto_dialect", "allow_experimental_prql_dialect",
    "allow_experimental_polyglot_dialect", "additional_table_filters", "additional_result_filter",
    "parallel_replicas_custom_key", "allow_introspection_functions", "format_schema", "format_schema_source",
    "format_schema_message_name", "format_template_resultset", "format_template_row",
    "format_template_rows_between_delimiter", "output_format_schema", "input_format_record_errors_file_path",
    "into_outfile_create_parent_directories", "format_avro_schema_registry_url",
    "default_table_engine", "default_temporary_table_engine", "default_database_engine",
    "dynamic_disk_allow_from_env", "dynamic_disk_allow_from_zk", "dynamic_disk_allow_include",
    "format_display_secrets_in_show_and_select", "profile", "compatibility",
    "s3_allow_server_credentials_in_user_queries", "ai_function_allow_insecure_endpoint",
    *HANDLE_SETTINGS,
})
DENIED_SETTING_PREFIXES = ("ai_function_", "jemalloc_")
#: Text-valued settings (types String and Map in system.settings) that are plain data: names, tags,
#: delimiters, inline format templates, time zones.
SAFE_TEXT_SETTINGS = frozenset({
    "log_comment", "query_cache_tag", "insert_deduplication_token", "workload", "count_distinct_implementation",
    "network_compression_method", "bool_true_representation", "bool_false_representation",
    "format_csv_null_representation", "format_tsv_null_representation", "format_custom_field_delimiter",
    "format_custom_row_before_delimiter", "format_custom_row_after_delimiter", "format_custom_row_between_delimiter",
    "format_custom_result_before_delimiter", "format_custom_result_after_delimiter", "format_regexp",
    "format_template_row_format", "format_template_resultset_format", "output_format_pretty_grid_charset",
    "output_format_avro_codec", "output_format_avro_string_column_pattern", "column_names_for_schema_inference",
    "schema_inference_hints", "format_json_object_each_row_column_for_object_name",
    "input_format_orc_reader_time_zone_name", "output_format_orc_writer_time_zone_name", "errors_output_format",
    "output_format_sql_insert_table_name", "input_format_mysql_dump_table_name", "default_format",
    "ignore_data_skipping_indices", "force_data_skipping_indices", "exclude_materialize_skip_indexes_on_insert",
    "preferred_optimize_projection_name", "force_optimize_projection_name", "function_implementation",
    "temporary_files_codec", "send_logs_source_regexp",
})
TEXT_SETTING_TYPES = frozenset({"String", "Map"})
#: Settings allowed inside the lake readers' own SETTINGS clause.
ICEBERG_SETTINGS = frozenset({"iceberg_metadata_file_path"})
#: ``system`` tables a reader may read (lower case).
READER_SYSTEM_TABLES = frozenset({
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "databases", "tables", "columns", "functions",
    "table_functions", "table_engines", "database_engines", "data_type_families", "formats", "settings",
    "time_zones", "collations", "keywords", "build_options", "contributors", "aggregate_function_combinators",
    "data_skipping_indices", "dictionaries", "parts",
})
#: ``system`` tables nobody may read: named collections hold the object store credentials.
SECRET_SYSTEM_TABLES = frozenset({"named_collections"})
READER_DATABASES = frozenset({"information_schema"})
#: Keys the platform's named collection may hold.
COLLECTION_KEYS = frozenset({"access_key_id", "secret_access_key", "session_token"})
IN_FUNCTIONS = frozenset({
    "in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin",
})

ACCESS_DENIED = 497
READONLY = 164
SYNTAX_ERROR = 62


class Refused(Exception):
    """The statement is not allowed; ``code`` is the ClickHouse error code to answer with."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Policy:
    """What the platform's own lake readers may touch (from the configuration)."""

    marts_database: str
    local_warehouse: Path | None = None  # icebergLocal paths must lie inside (file warehouse)
    s3_url_prefix: str | None = None  # icebergS3 URLs must start with it (S3 warehouse)
    s3_collection: str = LAKE_S3_COLLECTION


@dataclass(frozen=True)
class Verdict:
    """What the guard learned about an allowed statement."""

    kind: str  # the parser's root type, e.g. "SelectWithUnionQuery", "UseQuery"


@dataclass
class _Context:
    role: Role
    read_only: bool
    current_db: str
    params: Mapping[str, str]
    functions: set[str] = field(default_factory=set)  # lower-case names seen in the JSON dump


#: ``run(sql, params) -> text``: runs a query on the handle that will execute the statement.
Runner = Callable[[str, Mapping[str, str]], str]


class SqlGuard:
    """Judges one statement for one account (see module docstring)."""

    def __init__(self, policy: Policy, table_functions: Iterable[str] = (),
                 setting_types: Mapping[str, str] | None = None):
        """``table_functions``: chdb's system.table_functions; ``setting_types``: name -> type of
        system.settings (text-valued settings need to be in :data:`SAFE_TEXT_SETTINGS`)."""
        self.policy = policy
        self.table_functions = {n.lower() for n in table_functions} | KNOWN_OUTSIDE_TABLE_FUNCTIONS
        self.table_functions |= SAFE_TABLE_FUNCTIONS | {ICEBERG_LOCAL, ICEBERG_S3}
        self.text_settings = {n.lower() for n, t in (setting_types or {}).items() if t in TEXT_SETTING_TYPES}

    # -- entry points ------------------------------------------------------------------------------
    def check_settings(self, names: Iterable[str]) -> None:
        """Refuse request settings (URL parameters) nobody may change."""
        for name in names:
            self._check_setting(name)

    def _check_setting(self, name: str) -> None:
        low = name.lower()
        if (low in DENIED_SETTINGS or low.startswith(DENIED_SETTING_PREFIXES)
                or (low in self.text_settings and low not in SAFE_TEXT_SETTINGS)):
            raise Refused(ACCESS_DENIED, f"setting {name} may not be changed on this server (it can read or write "
                                         "files, reach the network, add SQL to the query or change how it is parsed)")

    def judge(self, run: Runner, sql: str, *, role: Role, read_only: bool, current_db: str,
              params: Mapping[str, str]) -> Verdict:
        """Parse ``sql`` (one statement, no inline data) on the executing handle and apply the rules."""
        ctx = _Context(role, read_only, current_db or "default", params)
        tree = self._json_dump(run, sql)
        explain = run(f"EXPLAIN AST {sql}", params)
        if tree is None:
            kind = _explain_root(explain)
            self._check_kind(kind, ctx)
            self._check_explain_only(run, sql, kind, explain, ctx)
            return Verdict(kind)
        kind = str(tree.get("type", ""))
        self._check_kind(kind, ctx)
        self._walk(tree, None, None, ctx)
        self._check_explain(explain, ctx, explain_only=False)
        return Verdict(kind)

    # -- the JSON dump -----------------------------------------------------------------------------
    def _json_dump(self, run: Runner, sql: str) -> dict | None:
        """The statement's AST as JSON, or None for types only EXPLAIN AST can show."""
        from lakehouse.clickhouse.engine import QueryError

        try:
            text = run("SELECT parseQueryToJSON({q:String})", {"q": param_value(sql)})
        except QueryError as exc:
            if exc.code == SYNTAX_ERROR and "Multi-statements are not allowed" in exc.message:
                raise Refused(SYNTAX_ERROR, "Multi-statements are not allowed: send one statement per request") \
                    from None
            m = re.search(r"AST node of type '([^']*)' does not support JSON serialization", exc.message)
            if exc.code == 36 and m and m.group(1).startswith(EXPLAIN_ONLY_KINDS):
                return None
            if exc.code == 36:
                raise Refused(ACCESS_DENIED, "this kind of statement is not supported by this server") from None
            # a syntax error etc.: ClickHouse's own message, without our wrapper query
            exc.message = re.sub(r": In scope SELECT parseQueryToJSON\(.*\)(?=\. \([A-Z_]+\)$)", "", exc.message,
                                 flags=re.S)
            raise
        try:
            tree = json.loads(text)
        except ValueError as exc:
            raise Refused(ACCESS_DENIED, f"the statement's parse tree could not be read: {exc}") from None
        if not isinstance(tree, dict):
            raise Refused(ACCESS_DENIED, "the statement's parse tree could not be read")
        return tree

    def _check_kind(self, kind: str, ctx: _Context) -> None:
        if kind in READ_KINDS:
            return
        if ctx.role == "writer" and kind in WRITE_KINDS:
            if ctx.read_only:
                raise Refused(READONLY, "Cannot execute query in readonly mode. For queries over HTTP, method GET "
                                        "implies readonly. You should use method POST for modifying queries")
            return
        if ctx.role == "reader" and kind in WRITE_KINDS:
            raise Refused(ACCESS_DENIED, f"this account is read-only: {_kind_name(kind)} is not allowed")
        raise Refused(ACCESS_DENIED, f"{_kind_name(kind)} statements are not allowed on this server")

    def _walk(self, node: Any, parent: dict | None, key: str | None, ctx: _Context) -> None:
        if isinstance(node, list):
            for item in node:
                self._walk(item, parent, key, ctx)
            return
        if not isinstance(node, dict):
            return
        self._check_node(node, parent, key, ctx)
        for k, v in node.items():
            if isinstance(v, dict | list):
                self._walk(v, node, k, ctx)

    def _check_node(self, node: dict, parent: dict | None, key: str | None, ctx: _Context) -> None:
        kind = node.get("type")
        if "out_file" in node:
            raise Refused(ACCESS_DENIED, "INTO OUTFILE writes a file on the server and is not allowed")
        if "infile" in node:
            raise Refused(ACCESS_DENIED, "FROM INFILE reads a file on the server and is not allowed")
        if node.get("field_type") == "CustomType":
            raise Refused(ACCESS_DENIED, "an expression as a setting value (e.g. disk(...)) is not allowed")
        if kind == "Function":
            self._check_function(node, parent, key, ctx)
        elif kind == "FunctionWithKeyValueArguments":
            raise Refused(ACCESS_DENIED, "dictionary sources are not allowed")
        elif kind == "SetQuery":
            if node.get("query_parameters"):
                raise Refused(ACCESS_DENIED, "SET param_<name> is not allowed: send query parameters with the request "
                                             "(param_<name>=... in the URL)")
            in_iceberg = bool(parent and parent.get("type") == "ExpressionList" and key == "children")
            for change in node.get("changes") or []:
                name = str(change.get("name", ""))
                if not (in_iceberg and name in ICEBERG_SETTINGS):
                    self._check_setting(name)
        elif kind == "TableIdentifier":
            self._check_table(_table_name(node, ctx), ctx)
        elif kind == "QueryParameter" and node.get("param_type") == "Identifier":
            self._check_table(_param(node, ctx), ctx)  # wherever it stands, it may name a table
        elif kind == "CreateQuery":
            self._check_create(node, ctx)
        elif kind == "AlterCommand":
            command = str(node.get("command_type", ""))
            if command in DENIED_ALTER_COMMANDS:
                raise Refused(ACCESS_DENIED, f"ALTER ... {command.replace('_', ' ')} is not allowed")
            if command == "MOVE_PARTITION" and node.get("move_destination_type") not in ("TABLE", "DISK", "VOLUME"):
                raise Refused(ACCESS_DENIED, "ALTER ... MOVE PARTITION is allowed to a table, disk or volume only")
        elif kind == "BackupQuery":
            raise Refused(ACCESS_DENIED, "BACKUP/RESTORE is not allowed")
        elif kind == "ExplainQuery" and isinstance(node.get("query"), dict):
            self._check_kind(str(node["query"].get("type", "")), ctx)

    def _check_create(self, node: dict, ctx: _Context) -> None:
        if node.get("attach") or node.get("has_attach_from_path"):
            raise Refused(ACCESS_DENIED, "ATTACH is not allowed")
        if node.get("is_dictionary"):
            raise Refused(ACCESS_DENIED, "dictionaries are not allowed (their sources read files and reach the "
                                         "network)")
        if node.get("is_time_series_table"):
            raise Refused(ACCESS_DENIED, "TimeSeries tables are not allowed")
        if "as_table_function" in node:
            raise Refused(ACCESS_DENIED, "CREATE TABLE ... AS <table function> is not allowed")
        if node.get("as_table"):
            self._check_table((str(node.get("as_database") or ""), str(node["as_table"])), ctx)

    def _check_function(self, node: dict, parent: dict | None, key: str | None, ctx: _Context) -> None:
        name = str(node.get("name", ""))
        low = name.lower()
        ctx.functions.add(low)
        fkind = node.get("kind")
        if fkind == "TABLE_ENGINE":
            if low not in ALLOWED_TABLE_ENGINES:
                raise Refused(ACCESS_DENIED, f"table engine {name} is not allowed (allowed: MergeTree family, "
                                             "Memory, Log family, Null, Set, Join, views)")
            return
        if fkind == "DATABASE_ENGINE":
            if low not in ALLOWED_DATABASE_ENGINES:
                raise Refused(ACCESS_DENIED, f"database engine {name} is not allowed (allowed: Atomic, Memory)")
            return
        if fkind == "BACKUP_NAME":
            raise Refused(ACCESS_DENIED, "BACKUP/RESTORE is not allowed")
        if fkind in ("CODEC", "STATISTICS"):
            return
        if low in IN_FUNCTIONS:
            args = _args(node)
            if len(args) == 2 and args[1].get("type") == "Identifier":
                parts = args[1].get("name_parts")
                self._check_table((str(parts[0]), str(parts[1])) if isinstance(parts, list) and len(parts) == 2
                                  else ("", str(args[1].get("name", ""))), ctx)
        _check_scalar(name)
        if low not in self.table_functions or low in SAFE_TABLE_FUNCTIONS:
            return
        in_from = key == "table_function" and parent is not None and parent.get("type") == "TableExpression"
        if low == ICEBERG_LOCAL and in_from and ctx.role == "writer":
            self._check_iceberg_local(node)
            return
        if low == ICEBERG_S3 and in_from and ctx.role == "writer":
            self._check_iceberg_s3(node)
            return
        raise Refused(ACCESS_DENIED, f"table function {name}() reaches files, processes or the network and is not "
                                     "allowed")

    # -- the lake readers --------------------------------------------------------------------------
    def _check_iceberg_local(self, node: dict) -> None:
        root = self.policy.local_warehouse
        args = _args(node)
        if root is None:
            raise Refused(ACCESS_DENIED, "icebergLocal() is allowed on a local (file://) warehouse only")
        if not args or not _is_string(args[0]) or any(not _is_settings(a) for a in args[1:]):
            raise Refused(ACCESS_DENIED, "icebergLocal() takes a path literal and optionally SETTINGS "
                                         "iceberg_metadata_file_path here")
        path = _inside(str(args[0]["value"]["value"]), root, "icebergLocal() path")
        for a in args[1:]:
            self._check_metadata_setting(a, path)

    def _check_iceberg_s3(self, node: dict) -> None:
        prefix = self.policy.s3_url_prefix
        if prefix is None:
            raise Refused(ACCESS_DENIED, "icebergS3() is allowed on an S3 warehouse only")
        args = _args(node)
        ok = (len(args) >= 2 and args[0].get("type") == "Identifier"
              and args[0].get("name") == self.policy.s3_collection and _url_arg(args[1]) is not None
              and all(_is_settings(a) for a in args[2:]))
        if not ok:
            raise Refused(ACCESS_DENIED, f"icebergS3() must read {self.policy.s3_collection}, url = '<warehouse "
                                         "URL>' (and optionally SETTINGS iceberg_metadata_file_path) here")
        url = _url_arg(args[1]) or ""
        if not url.startswith(prefix) or _unsafe_path(url[len(prefix):]):
            raise Refused(ACCESS_DENIED, f"icebergS3() URL {url!r} is outside the platform's warehouse {prefix}")
        for a in args[2:]:
            self._check_metadata_setting(a, None)

    def _check_metadata_setting(self, settings: dict, table_path: Path | None) -> None:
        for change in settings.get("changes") or []:
            value = change.get("value") or {}
            if change.get("name") != "iceberg_metadata_file_path" or value.get("field_type") != "String":
                raise Refused(ACCESS_DENIED, "only SETTINGS iceberg_metadata_file_path = '<file>' is allowed in a "
                                             "lake reader")
            meta = str(value.get("value", ""))
            if meta.startswith("/"):
                if table_path is None:
                    raise Refused(ACCESS_DENIED, "iceberg_metadata_file_path must be relative to the table")
                _inside(meta, self.policy.local_warehouse or table_path, "iceberg_metadata_file_path")
            elif _unsafe_path(meta):
                raise Refused(ACCESS_DENIED, f"iceberg_metadata_file_path {meta!r} leaves the table's folder")

    # -- tables ------------------------------------------------------------------------------------
    def _check_table(self, name: str | tuple[str, str], ctx: _Context) -> None:
        """``name``: ``(database, table)``, or text ``[db.]table`` (split on the first dot)."""
        if isinstance(name, tuple):
            db, table = name
        else:
            db, _, table = name.partition(".") if "." in name else ("", "", name)
        db = db.strip().strip("`\"") or ctx.current_db
        table = table.strip().strip("`\"")
        ldb, ltable = db.lower(), table.lower()
        if ldb == "system" and ltable in SECRET_SYSTEM_TABLES:
            raise Refused(ACCESS_DENIED, f"system.{table} holds credentials and is not readable")
        if ctx.role == "writer":
            return
        if db == self.policy.marts_database or ldb in READER_DATABASES:
            return
        if ldb == "system" and ltable in READER_SYSTEM_TABLES:
            return
        raise Refused(ACCESS_DENIED, f"this account reads the {self.policy.marts_database} database only (and "
                                     f"system catalog tables), not {db}.{table}")

    # -- EXPLAIN AST -------------------------------------------------------------------------------
    def _check_explain(self, explain: str, ctx: _Context, explain_only: bool) -> None:
        for depth, node_type, rest in _explain_lines(explain):
            if node_type == "Function":
                name = rest.split(" ", 1)[0]
                low = name.lower()
                _check_scalar(name)
                if low in self.table_functions and low not in SAFE_TABLE_FUNCTIONS and (
                        explain_only or low not in (ICEBERG_LOCAL, ICEBERG_S3)):
                    raise Refused(ACCESS_DENIED, f"table function {name}() reaches files, processes or the network "
                                                 "and is not allowed")
                if not explain_only and low in (ICEBERG_LOCAL, ICEBERG_S3) and low not in ctx.functions:
                    raise Refused(ACCESS_DENIED, f"table function {name}() could not be checked")
            elif node_type == "TableIdentifier":
                self._check_table(rest.split(" ", 1)[0], ctx)
            elif explain_only and node_type == "Set":
                raise Refused(ACCESS_DENIED, "a SETTINGS clause is not allowed in this statement")
            elif explain_only and node_type == "Literal" and depth == 1:
                raise Refused(ACCESS_DENIED, "INTO OUTFILE writes a file on the server and is not allowed")

    def _check_explain_only(self, run: Runner, sql: str, kind: str, explain: str, ctx: _Context) -> None:
        _check_tree_shape(explain)
        self._check_explain(explain, ctx, explain_only=True)
        if kind in ("CreateNamedCollectionQuery", "DropNamedCollectionQuery"):
            self._check_named_collection(run("SELECT formatQuery({q:String})", {"q": param_value(sql)}), kind)

    def _check_named_collection(self, canonical: str, kind: str) -> None:
        """Only the platform's collection, holding only credentials (so icebergS3 can never be pointed at
        another endpoint or host through it)."""
        name = re.escape(self.policy.s3_collection)
        if kind == "DropNamedCollectionQuery":
            if not re.fullmatch(rf"DROP NAMED COLLECTION (IF EXISTS )?{name}", canonical.strip()):
                raise Refused(ACCESS_DENIED, f"only the named collection {self.policy.s3_collection} may be dropped")
            return
        m = re.fullmatch(rf"CREATE NAMED COLLECTION (IF NOT EXISTS )?{name} AS (.*)", canonical.strip(), re.S)
        if not m:
            raise Refused(ACCESS_DENIED, f"only the named collection {self.policy.s3_collection} may be created")
        pair = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*) = '(?:[^'\\]|\\.)*'(?: (?:NOT )?OVERRIDABLE)?\s*(,|$)")
        body, pos, keys = m.group(2), 0, []
        while pos < len(body):
            p = pair.match(body, pos)
            if not p or p.end() == pos:
                raise Refused(ACCESS_DENIED, "a named collection holds string credentials only")
            keys.append(p.group(1).lower())
            pos = p.end()
        extra = sorted(set(keys) - COLLECTION_KEYS)
        if extra or not keys:
            raise Refused(ACCESS_DENIED, f"named collection {self.policy.s3_collection} may hold only "
                                         f"{', '.join(sorted(COLLECTION_KEYS))}, not {', '.join(extra) or 'nothing'}")


# -- helpers ---------------------------------------------------------------------------------------
_PARAM_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b",
                  "\f": "\\f"}


def param_value(text: str) -> str:
    """``text`` as the value of a String query parameter: ClickHouse reads parameter values with the
    escaping of TabSeparated, so backslashes and control characters are escaped (otherwise the parser
    would judge a different text than the one executed)."""
    return "".join(_PARAM_ESCAPES.get(c, c) for c in text)


def _kind_name(kind: str) -> str:
    base = kind.split("_", 1)[0].removesuffix("Query")
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", base).upper()
    return words or "this"


def _check_scalar(name: str) -> None:
    low = name.lower()
    if low in DENIED_FUNCTIONS or low.startswith(DENIED_FUNCTION_PREFIXES):
        raise Refused(ACCESS_DENIED, f"function {name}() reaches files, dictionaries, processes or the network and "
                                     "is not allowed")


def _args(node: dict) -> list[dict]:
    args = node.get("arguments") or {}
    return [a for a in args.get("children") or [] if isinstance(a, dict)]


def _is_string(node: dict) -> bool:
    return node.get("type") == "Literal" and (node.get("value") or {}).get("field_type") == "String"


def _is_settings(node: dict) -> bool:
    return node.get("type") == "SetQuery"


def _url_arg(node: dict) -> str | None:
    """The value of a ``url = '<literal>'`` argument, else None."""
    if node.get("type") != "Function" or node.get("name") != "equals":
        return None
    pair = _args(node)
    if len(pair) == 2 and pair[0].get("type") == "Identifier" and pair[0].get("name") == "url" and _is_string(pair[1]):
        return str(pair[1]["value"]["value"])
    return None


_UNSAFE = re.compile(r"(^|/)\.\.?(/|$)|%|\\|[?#*{}\[\]@\s]")


def _unsafe_path(path: str) -> bool:
    """A relative path or URL tail that could leave its folder: ``..``, escapes, globs, queries."""
    return bool(_UNSAFE.search(path)) or path.startswith("/")


def _inside(path: str, root: Path, what: str) -> Path:
    if any(c in path for c in "*?{}[]") or "\x00" in path:
        raise Refused(ACCESS_DENIED, f"{what} {path!r} may not contain glob characters")
    real = Path(os.path.realpath(path))
    base = Path(os.path.realpath(root))
    if real != base and base not in real.parents:
        raise Refused(ACCESS_DENIED, f"{what} {path!r} is outside the platform's warehouse {base}")
    return real


def _param(node: dict, ctx: _Context) -> str:
    name = str(node.get("name"))
    if name not in ctx.params:
        raise Refused(ACCESS_DENIED, f"identifier parameter {{{name}:Identifier}} has no value in this request")
    return ctx.params[name]


def _table_name(node: dict, ctx: _Context) -> str | tuple[str, str]:
    """A TableIdentifier's ``(db, table)`` (or ``[db.]table`` text), its ``{x:Identifier}`` parameters
    filled in from the request (they stand for the empty name parts, in order)."""
    values = iter([_param(c, ctx) for c in node.get("children") or []
                   if isinstance(c, dict) and c.get("type") == "QueryParameter"])
    parts = node.get("name_parts")
    parts = [str(p) for p in parts] if isinstance(parts, list) and parts else [str(node.get("name", ""))]
    filled = [p or next(values, "") for p in parts]
    return (filled[0], filled[1]) if len(filled) == 2 else ".".join(filled)


_LINE = re.compile(r"^( *)([A-Za-z][A-Za-z ]*?)(?: (.*?))?(?: \(children (\d+)\))?$")


def _explain_lines(explain: str) -> Iterator[tuple[int, str, str]]:
    """(depth, node type, rest of the line) of each EXPLAIN AST line."""
    for line in explain.splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line)
        if not m:
            yield len(line) - len(line.lstrip(" ")), "?", line.strip()
            continue
        node_type = m.group(2)
        rest = m.group(3) or ""
        head, _, tail = node_type.partition(" ")  # "Function file" -> type Function, rest "file ..."
        if head in ("Function", "TableIdentifier", "Identifier", "Literal"):
            node_type, rest = head, (tail + " " + rest).strip()
        yield len(m.group(1)), node_type, rest


def _explain_root(explain: str) -> str:
    first = next(iter(explain.splitlines()), "").strip()
    return first.split(" ", 1)[0]


def _check_tree_shape(explain: str) -> None:
    """Every ``(children N)`` must have exactly N lines one level deeper: a name containing a newline
    (which could fake lines) breaks the count and the statement is refused."""
    lines = [ln for ln in explain.splitlines() if ln.strip()]
    depths = [len(ln) - len(ln.lstrip(" ")) for ln in lines]
    for i, ln in enumerate(lines):
        m = re.search(r"\(children (\d+)\)$", ln)
        want = int(m.group(1)) if m else 0
        got = 0
        for d in depths[i + 1:]:
            if d <= depths[i]:
                break
            if d == depths[i] + 1:
                got += 1
        if got != want:
            raise Refused(ACCESS_DENIED, "the statement's parse tree could not be read (a name with a line break?)")
