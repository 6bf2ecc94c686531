{#-
  lake_table: a model written as an Iceberg table in the attached lake (database `lake`, the REST
  catalog), one atomic Iceberg commit per build.

  1. The model's rows are computed into a temporary table of the connection and committed there:
     DuckDB lets one transaction write to only one attached database, and the incremental SQL reads
     the Iceberg table it is about to change.
  2. One DuckDB transaction on the lake, committed as one catalog commit:
       - table missing:          CREATE TABLE ... AS SELECT * FROM stage
       - full refresh:           pyiceberg Table.overwrite of the staged rows through the REST
                                 catalog (lakehouse.transform.duckdb_plugin), one snapshot that replaces the
                                 data files (DuckDB's DELETE would only add position deletes over
                                 them: a full refresh also compacts the table); DROP + CREATE
                                 when the columns changed
       - incremental:            DELETE the rows of each series (config series_key) from the first
                                 staged order_key on; INSERT the staged rows
     (the iceberg extension has no MERGE/ON CONFLICT on Iceberg: DELETE + INSERT in one transaction).
     Nothing is committed when an incremental build stages no rows.
-#}
{% materialization lake_table, adapter='duckdb' %}

  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set existing = adapter.get_relation(
      database=this.database, schema=this.schema, identifier=this.identifier) -%}
  {%- set full_refresh = should_full_refresh() -%}
  {%- set series_key = config.require('series_key') -%}
  {%- set order_key = config.require('order_key') -%}
  {%- set stage = api.Relation.create(
      database='temp', schema='main', identifier=this.identifier ~ '__lake_stage', type='table') -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}

  {#-- 1. stage the rows in a temporary table of this connection --#}
  {% call statement('stage') -%}
    create or replace temp table {{ stage.identifier }} as {{ sql }}
  {%- endcall %}
  {{ adapter.commit() }}

  {%- set staged_rows = run_query('select count(*) from ' ~ stage).columns[0].values()[0] -%}
  {%- set stage_columns = adapter.get_columns_in_relation(stage) | map(attribute='name') | list -%}

  {%- set mode = 'create' if existing is none else ('full refresh' if full_refresh else 'incremental') -%}
  {{ log("lake_table " ~ target_relation ~ ": " ~ mode ~ ", " ~ staged_rows ~ " rows staged", info=True) }}

  {#-- 2. one Iceberg commit --#}
  {% if existing is none %}
    {% do adapter.create_schema(target_relation.without_identifier()) %}
    {% call statement('main') -%}
      create table {{ target_relation }} as select * from {{ stage }}
    {%- endcall %}
  {% elif full_refresh %}
    {%- set target_columns = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
    {% if target_columns != stage_columns %}
      {{ log("lake_table: columns of " ~ target_relation ~ " changed: dropping and recreating it", info=True) }}
      {% call statement('drop_target') -%}
        drop table {{ target_relation }}
      {%- endcall %}
      {{ adapter.commit() }}
      {% call statement('main') -%}
        create table {{ target_relation }} as select * from {{ stage }}
      {%- endcall %}
    {% else %}
      {#-- pyiceberg overwrite (lakehouse.transform.duckdb_plugin): replaces the data files in one snapshot;
           DuckDB's DELETE would keep them all behind position deletes --#}
      {%- set parquet = target.path.rsplit('/', 1)[0] ~ '/' ~ this.identifier ~ '.overwrite.parquet' -%}
      {% call statement('stage_parquet') -%}
        copy {{ stage }} to '{{ parquet }}' (format parquet)
      {%- endcall %}
      {% do adapter.store_relation('lake_setup', stage, [], parquet, 'iceberg_overwrite',
                                   {'table': this.schema ~ '.' ~ this.identifier}) %}
      {% call statement('main') -%}
        select {{ staged_rows }} as rows_written
      {%- endcall %}
    {% endif %}
  {% elif staged_rows > 0 %}
    {% call statement('delete_changed') -%}
      delete from {{ target_relation }}
      where exists (
          select 1
          from (
              select {{ series_key }} as series, min({{ order_key }}) as from_key
              from {{ stage }}
              group by 1
          ) as s
          where s.series = {{ target_relation }}.{{ series_key }}
            and {{ target_relation }}.{{ order_key }} >= s.from_key
      )
    {%- endcall %}
    {% call statement('main') -%}
      insert into {{ target_relation }} by name select * from {{ stage }}
    {%- endcall %}
  {% else %}
    {{ log("lake_table: " ~ target_relation ~ " is up to date (nothing to re-emit)", info=True) }}
    {% call statement('main') -%}
      select 0 as rows_written
    {%- endcall %}
  {% endif %}
  {{ adapter.commit() }}

  {% call statement('drop_stage') -%}
    drop table if exists {{ stage }}
  {%- endcall %}
  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}
