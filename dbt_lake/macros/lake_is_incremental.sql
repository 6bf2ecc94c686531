{#- True when a lake_table model will be built incrementally: its Iceberg table exists and this is
    not a full refresh. Models branch on it like on dbt's is_incremental(). -#}
{% macro lake_is_incremental() %}
    {%- if not execute or model.config.materialized != 'lake_table' or should_full_refresh() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier) -%}
    {{ return(existing is not none) }}
{% endmacro %}
