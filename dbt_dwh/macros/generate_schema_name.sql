{#- Every model lives in the target schema: the ClickHouse database named by [clickhouse] database
    (default "marts"). A custom schema is used verbatim, never "<target>_<custom>". -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
