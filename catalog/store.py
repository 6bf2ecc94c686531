"""The catalog database: which tables, views and namespaces exist and where their metadata lives.

Uses pyiceberg's SqlCatalog tables (``iceberg_tables``, ``iceberg_namespace_properties``), so a
pyiceberg ``SqlCatalog`` on the same database sees the same lake (namespaces with a dotted level are
the exception, see ``catalog.names``). The table pointer swap is one compare-and-swap
``UPDATE ... WHERE metadata_location = :expected``; a multi-table commit runs all its swaps in one
database transaction (all or nothing).

Every write goes through :meth:`Store._write`, which tells a failed COMMIT from one whose outcome is
unknown: a server error (SQLSTATE) or any SQLite error means the transaction rolled back; a lost
connection during COMMIT on a server database means it may have landed, reported as
``CommitStateUnknown`` so that nobody deletes the files the new pointer may name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from catalog.errors import (
    AlreadyExists,
    BadRequest,
    CommitFailed,
    CommitStateUnknown,
    NamespaceNotEmpty,
    NoSuchNamespace,
)
from catalog.names import is_valid_unicode, ns_child_prefixes, ns_from_key, ns_key, ns_name

#: The tables of pyiceberg's SqlCatalog (schema v1), declared with SQLAlchemy Core (importing the
#: ORM models from pyiceberg.catalog.sql would add ~0.3 s to every in-process start).
SCHEMA = MetaData()
_tables = Table(
    "iceberg_tables", SCHEMA,
    Column("catalog_name", String(255), primary_key=True, nullable=False),
    Column("table_namespace", String(255), primary_key=True, nullable=False),
    Column("table_name", String(255), primary_key=True, nullable=False),
    Column("metadata_location", String(1000), nullable=True),
    Column("previous_metadata_location", String(1000), nullable=True),
    Column("iceberg_type", String(5), nullable=True),
)
_ns_props = Table(
    "iceberg_namespace_properties", SCHEMA,
    Column("catalog_name", String(255), primary_key=True, nullable=False),
    Column("namespace", String(255), primary_key=True, nullable=False),
    Column("property_key", String(255), primary_key=True, nullable=False),
    Column("property_value", String(1000), nullable=False),
)
Tables = _tables.c
NsProps = _ns_props.c

TABLE = "TABLE"
VIEW = "VIEW"
EXISTS_KEY = "exists"  # SqlCatalog's marker property of an (otherwise empty) namespace

#: The two statements of every commit, built once: building a statement (its ``==`` clauses) and deriving
#: its cache key cost about 0.3 ms each time, more than SQLite takes to run it.
_LOOKUP = select(Tables.iceberg_type, Tables.metadata_location).where(
    Tables.catalog_name == bindparam("cat"), Tables.table_namespace == bindparam("ns"),
    Tables.table_name == bindparam("name"),
)
_SWAP = update(_tables).where(
    Tables.catalog_name == bindparam("cat"), Tables.table_namespace == bindparam("ns"),
    Tables.table_name == bindparam("name"), Tables.metadata_location == bindparam("expected"),
).values(metadata_location=bindparam("new"), previous_metadata_location=bindparam("expected"))


@dataclass(frozen=True)
class Swap:
    """One pointer swap of a commit: table ``name`` in ``namespace`` from ``expected`` to ``new``."""

    namespace: tuple[str, ...]
    name: str
    expected: str | None  # None: create the row (the table must not exist yet)
    new: str
    kind: str = TABLE


def normalize_db_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to the psycopg 3 driver; make SQLite parent dirs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return url


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine tuned for the catalog (SQLite: WAL, busy timeout; others: a pool)."""
    url = normalize_db_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _check_properties(properties: dict[str, str]) -> None:
    """Namespace properties must fit their columns: 400 instead of a database error."""
    for k, v in properties.items():
        for what, text_, limit in (("key", k, 255), ("value", v, 1000)):
            if len(text_) > limit:
                raise BadRequest(f"namespace property {what} {text_[:40]!r}... is longer than {limit} characters")
            if "\x00" in text_ or not is_valid_unicode(text_):
                raise BadRequest(f"namespace property {what} {text_[:40]!r} contains NUL or invalid Unicode")


class Store:
    """Catalog rows of one catalog name (the warehouse name) in a SQL database."""

    def __init__(self, db_url: str, catalog_name: str) -> None:
        self.engine = make_engine(db_url)
        self.name = catalog_name
        self._init_schema()

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: rolled back on any error inside; a COMMIT whose outcome the database
        cannot tell raises ``CommitStateUnknown`` (see the module doc)."""
        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                yield conn
            except BaseException:
                trans.rollback()
                raise
            try:
                trans.commit()
            except Exception as exc:
                if not self._commit_may_have_landed(exc):
                    raise
                raise CommitStateUnknown(
                    "Commit state unknown: the connection to the catalog database was lost while committing"
                ) from exc

    def _commit_may_have_landed(self, exc: Exception) -> bool:
        if self.engine.dialect.name == "sqlite":
            return False  # an in-process database: an error from COMMIT means it did not happen
        orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
        return getattr(orig, "sqlstate", None) is None  # no SQLSTATE: the server never answered

    def _init_schema(self) -> None:
        SCHEMA.create_all(self.engine)
        cols = {c["name"] for c in inspect(self.engine).get_columns(_tables.name)}
        if "iceberg_type" not in cols:  # a SqlCatalog v0 database: add the column views need
            with self._write() as conn:
                conn.execute(text(f"ALTER TABLE {_tables.name} ADD COLUMN iceberg_type VARCHAR(5)"))

    # Namespaces ----------------------------------------------------------------------------------
    def namespace_exists(self, namespace: tuple[str, ...]) -> bool:
        """True when the namespace has properties or holds tables."""
        key = ns_key(namespace)
        with self.engine.connect() as conn:
            q1 = select(NsProps.namespace).where(NsProps.catalog_name == self.name, NsProps.namespace == key).limit(1)
            if conn.execute(q1).first():
                return True
            q2 = select(Tables.table_name).where(Tables.catalog_name == self.name, Tables.table_namespace == key)
            return conn.execute(q2.limit(1)).first() is not None

    def require_namespace(self, namespace: tuple[str, ...]) -> None:
        """Raise 404 NoSuchNamespace when the namespace does not exist."""
        if not self.namespace_exists(namespace):
            raise NoSuchNamespace(f"Namespace does not exist: {ns_name(namespace)}")

    def create_namespace(self, namespace: tuple[str, ...], properties: dict[str, str]) -> None:
        """Create a namespace with its properties (409 when it exists)."""
        if self.namespace_exists(namespace):
            raise AlreadyExists(f"Namespace already exists: {ns_name(namespace)}")
        if len(namespace) > 1:
            self.require_namespace(namespace[:-1])
        _check_properties(properties)
        rows = [{EXISTS_KEY: "true"}.items(), properties.items()]
        values = {k: v for items in rows for k, v in items}
        key = ns_key(namespace)
        try:
            with self._write() as conn:
                conn.execute(
                    insert(_ns_props),
                    [{"catalog_name": self.name, "namespace": key, "property_key": k, "property_value": v}
                     for k, v in values.items()],
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"Namespace already exists: {ns_name(namespace)}") from exc

    def namespace_properties(self, namespace: tuple[str, ...]) -> dict[str, str]:
        """Properties of a namespace (404 when it does not exist)."""
        key = ns_key(namespace)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(NsProps.property_key, NsProps.property_value).where(
                    NsProps.catalog_name == self.name, NsProps.namespace == key
                )
            ).all()
        if not rows:
            self.require_namespace(namespace)
        return {k: v for k, v in rows if k != EXISTS_KEY}

    def update_namespace_properties(
        self, namespace: tuple[str, ...], removals: Iterable[str], updates: dict[str, str]
    ) -> tuple[list[str], list[str], list[str]]:
        """Remove and set properties in one transaction; return (removed, updated, missing)."""
        key = ns_key(namespace)
        current = self.namespace_properties(namespace)
        _check_properties(updates)
        updates = {k: v for k, v in updates.items() if k != EXISTS_KEY}
        removals = [r for r in dict.fromkeys(removals) if r != EXISTS_KEY]
        removed = [r for r in removals if r in current]
        missing = [r for r in removals if r not in current]
        with self._write() as conn:
            base = and_(NsProps.catalog_name == self.name, NsProps.namespace == key)
            if removed or updates:
                conn.execute(delete(_ns_props).where(base, NsProps.property_key.in_([*removed, *updates])))
            rows = [{"catalog_name": self.name, "namespace": key, "property_key": k, "property_value": v}
                    for k, v in updates.items()]
            rows.append({"catalog_name": self.name, "namespace": key, "property_key": EXISTS_KEY,
                         "property_value": "true"})
            conn.execute(delete(_ns_props).where(base, NsProps.property_key == EXISTS_KEY))
            conn.execute(insert(_ns_props), rows)
        return removed, list(updates), missing

    def drop_namespace(self, namespace: tuple[str, ...]) -> None:
        """Drop an empty namespace (404 when absent, 409 when it holds tables, views or namespaces)."""
        self.require_namespace(namespace)
        key = ns_key(namespace)
        with self._write() as conn:
            has_tables = conn.execute(
                select(Tables.table_name)
                .where(Tables.catalog_name == self.name, Tables.table_namespace == key).limit(1)
            ).first()
            children = self._children(conn, namespace)
            if has_tables or children:
                raise NamespaceNotEmpty(f"Namespace {ns_name(namespace)} is not empty")
            conn.execute(delete(_ns_props).where(NsProps.catalog_name == self.name, NsProps.namespace == key))

    def _children(self, conn, parent: tuple[str, ...]) -> list[tuple[str, ...]]:  # noqa: ANN001
        """Direct children of ``parent``: keys of both storage forms that start with the parent's key."""
        def under(column):  # noqa: ANN001, ANN202
            if not parent:
                return column.isnot(None)
            return or_(*(column.startswith(p, autoescape=True) for p in ns_child_prefixes(parent)))

        names = set(conn.execute(
            select(NsProps.namespace).where(NsProps.catalog_name == self.name, under(NsProps.namespace))
        ).scalars())
        names |= set(conn.execute(
            select(Tables.table_namespace).where(Tables.catalog_name == self.name, under(Tables.table_namespace))
        ).scalars())
        depth = len(parent) + 1
        out = set()
        for n in names:
            levels = ns_from_key(n)
            if len(levels) >= depth and levels[: depth - 1] == parent:
                out.add(levels[:depth])
        return sorted(out)

    def list_namespaces(self, parent: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        """Direct children of ``parent`` (top level when empty), sorted."""
        if parent:
            self.require_namespace(parent)
        with self.engine.connect() as conn:
            return self._children(conn, parent)

    # Tables and views ----------------------------------------------------------------------------
    @staticmethod
    def _kind_clause(kind: str):  # noqa: ANN205
        if kind == TABLE:
            return or_(Tables.iceberg_type == TABLE, Tables.iceberg_type.is_(None))
        return Tables.iceberg_type == kind

    def list_objects(self, namespace: tuple[str, ...], kind: str = TABLE) -> list[str]:
        """Names of the tables (or views) in a namespace, sorted (404 when it does not exist)."""
        self.require_namespace(namespace)
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(Tables.table_name).where(
                    Tables.catalog_name == self.name, Tables.table_namespace == ns_key(namespace),
                    self._kind_clause(kind),
                ).order_by(Tables.table_name)
            ).scalars())

    def lookup(self, namespace: tuple[str, ...], name: str) -> tuple[str, str | None] | None:
        """``(kind, metadata_location)`` of an object, or None when absent."""
        with self.engine.connect() as conn:
            row = conn.execute(_LOOKUP, {"cat": self.name, "ns": ns_key(namespace), "name": name}).first()
        if row is None:
            return None
        return (row[0] or TABLE), row[1]

    def location_of(self, namespace: tuple[str, ...], name: str, kind: str = TABLE) -> str | None:
        """Current metadata location of a table (or view), or None when it does not exist."""
        found = self.lookup(namespace, name)
        if found is None or found[0] != kind:
            return None
        return found[1]

    def insert(self, namespace: tuple[str, ...], name: str, metadata_location: str, kind: str = TABLE) -> None:
        """Register a new object (409 AlreadyExists when the name is taken by a table or view)."""
        try:
            with self._write() as conn:
                self._insert(conn, namespace, name, metadata_location, kind)
        except IntegrityError as exc:
            raise AlreadyExists(f"{kind.title()} already exists: {ns_name(namespace)}.{name}") from exc

    def _insert(self, conn, namespace, name, metadata_location, kind) -> None:  # noqa: ANN001
        conn.execute(insert(_tables).values(
            catalog_name=self.name, table_namespace=ns_key(namespace), table_name=name,
            metadata_location=metadata_location, previous_metadata_location=None, iceberg_type=kind,
        ))

    def swap(self, swaps: list[Swap]) -> None:
        """Apply pointer swaps atomically: each is a compare-and-swap; any mismatch -> 409, nothing changes."""
        try:
            with self._write() as conn:
                for s in swaps:
                    if s.expected is None:
                        self._insert(conn, s.namespace, s.name, s.new, s.kind)
                        continue
                    result = conn.execute(_SWAP, {"cat": self.name, "ns": ns_key(s.namespace), "name": s.name,
                                                  "expected": s.expected, "new": s.new})
                    if result.rowcount != 1:
                        raise CommitFailed(
                            f"Commit failed: {ns_name(s.namespace)}.{s.name} was changed by another commit"
                        )
        except IntegrityError as exc:
            raise CommitFailed(f"Commit failed: a table in this commit was created concurrently ({exc.orig})") from exc

    def replace(self, namespace: tuple[str, ...], name: str, metadata_location: str, kind: str = TABLE) -> None:
        """Point an existing object at a metadata file unconditionally (register with overwrite)."""
        with self._write() as conn:
            current = conn.execute(
                select(Tables.metadata_location).where(
                    Tables.catalog_name == self.name, Tables.table_namespace == ns_key(namespace),
                    Tables.table_name == name,
                )
            ).first()
            if current is None:
                self._insert(conn, namespace, name, metadata_location, kind)
            else:
                conn.execute(update(_tables).where(
                    Tables.catalog_name == self.name, Tables.table_namespace == ns_key(namespace),
                    Tables.table_name == name,
                ).values(metadata_location=metadata_location, previous_metadata_location=current[0],
                         iceberg_type=kind))

    def delete(self, namespace: tuple[str, ...], name: str, kind: str = TABLE) -> str | None:
        """Remove an object; return its last metadata location (None when it did not exist)."""
        with self._write() as conn:
            where = (Tables.catalog_name == self.name, Tables.table_namespace == ns_key(namespace),
                     Tables.table_name == name, self._kind_clause(kind))
            loc = conn.execute(select(Tables.metadata_location).where(*where)).first()
            if loc is None:
                return None
            conn.execute(delete(_tables).where(*where))
            return loc[0]

    def rename(self, src: tuple[tuple[str, ...], str], dst: tuple[tuple[str, ...], str], kind: str = TABLE) -> bool:
        """Rename an object (also across namespaces); False when the source does not exist."""
        try:
            with self._write() as conn:
                result = conn.execute(update(_tables).where(
                    Tables.catalog_name == self.name, Tables.table_namespace == ns_key(src[0]),
                    Tables.table_name == src[1], self._kind_clause(kind),
                ).values(table_namespace=ns_key(dst[0]), table_name=dst[1]))
                return result.rowcount == 1
        except IntegrityError as exc:
            raise AlreadyExists(f"Cannot rename: {ns_name(dst[0])}.{dst[1]} already exists") from exc

    def count(self) -> tuple[int, int]:
        """(namespaces, tables) of this catalog, for the UI."""
        with self.engine.connect() as conn:
            n = conn.execute(select(func.count(func.distinct(NsProps.namespace))).where(
                NsProps.catalog_name == self.name)).scalar_one()
            t = conn.execute(
                select(func.count()).select_from(_tables).where(Tables.catalog_name == self.name)
            ).scalar_one()
        return int(n), int(t)
