"""ClickHouse for the platform: chdb (ClickHouse as a library) behind ClickHouse's HTTP interface.

- :mod:`lakehouse.clickhouse.engine` — chdb on the data path, per-session handles, one engine lock;
- :mod:`lakehouse.clickhouse.server` — the HTTP interface (clickhouse-connect, dbt-clickhouse, Superset);
- :mod:`lakehouse.clickhouse.guard` — what each account may run, judged with ClickHouse's own parser;
- :mod:`lakehouse.clickhouse.front` — serving it, temporary fronts, clients;
- :mod:`lakehouse.clickhouse.statements` / :mod:`lakehouse.clickhouse.codecs` — SQL lexing, HTTP encodings.
"""
