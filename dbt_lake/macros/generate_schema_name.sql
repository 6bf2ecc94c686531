{#- Use a model's custom schema verbatim ("features", not "<target schema>_features"): the Iceberg
    namespaces are a contract shared with the other stages. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
