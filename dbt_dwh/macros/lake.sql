{#-
  Lake (Iceberg) tables as ClickHouse table expressions.

  lake_source('raw', 'quotes') renders the reader for the table's CURRENT snapshot as committed in the
  REST catalog. `lakehouse transform dwh` resolves each table's metadata-location in the catalog and
  passes it in the `lake` var; the reader is pinned to that metadata file, because ClickHouse's
  catalog-less readers would otherwise pick "the newest" metadata/*.metadata.json by listing the folder
  (which may belong to an uncommitted or rejected commit):

    local file warehouse: icebergLocal('<table dir>', SETTINGS iceberg_metadata_file_path = '<file>')
    S3 warehouse:         icebergS3(<named collection>, url = '<http url of table dir>/',
                                    SETTINGS iceberg_metadata_file_path = 'metadata/<file>')

  A table the lake does not have yet (e.g. ml.* before the first training) becomes an empty relation
  with the contract's columns and ClickHouse types (lakehouse.contracts, passed in the `lake` var), so
  the marts build and stay empty instead of failing.
  The source() call records lineage for dbt docs.
-#}

{% macro lake_source(source_name, table_name) -%}
    {%- set identifier = source_name ~ '.' ~ table_name -%}
    {%- set relation = source(source_name, table_name) -%}
    {%- set spec = var('lake', {}).get(identifier) -%}
    {%- if spec is none -%}
        {%- if execute and flags.WHICH not in ('parse', 'docs', 'generate', 'list', 'ls') -%}
            {{ exceptions.raise_compiler_error(
                "lake table " ~ identifier ~ " is not resolved: run the marts with `lakehouse transform dwh`, "
                ~ "which passes the catalog's current metadata files in the `lake` var") }}
        {%- endif -%}
        {{ relation }}
    {%- elif spec.storage == 'missing' -%}
        {{ lake_empty_relation(identifier) }}
    {%- elif spec.storage == 'local' -%}
        icebergLocal({{ lake_quote(spec.path) }}, SETTINGS iceberg_metadata_file_path = {{ lake_quote(spec.metadata) }})
    {%- elif spec.storage == 's3' -%}
        icebergS3({{ var('lake_s3_collection') }}, url = {{ lake_quote(spec.url) }}, SETTINGS iceberg_metadata_file_path = {{ lake_quote(spec.metadata) }})
    {%- else -%}
        {{ exceptions.raise_compiler_error("lake table " ~ identifier ~ ": unknown storage '" ~ spec.storage ~ "'") }}
    {%- endif -%}
{%- endmacro %}


{% macro lake_quote(text) -%}
    '{{ text | replace("\\", "\\\\") | replace("'", "\\'") }}'
{%- endmacro %}


{% macro lake_empty_relation(identifier) -%}
    {#- the contract's columns (lakehouse.contracts), passed in the `lake` var by `lakehouse transform dwh` -#}
    {%- set columns = var('lake', {}).get(identifier, {}).get('columns') -%}
    {%- if not columns -%}
        {{ exceptions.raise_compiler_error("lake table " ~ identifier ~ " is missing and the `lake` var gives no columns for it") }}
    {%- endif -%}
    (SELECT {% for name, type in columns %}CAST(NULL AS {{ type if type.startswith('Nullable(') else 'Nullable(' ~ type ~ ')' }}) AS {{ name }}{% if not loop.last %}, {% endif %}{% endfor %} WHERE 0)
{%- endmacro %}
