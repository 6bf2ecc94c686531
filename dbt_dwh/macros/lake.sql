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
  with the contract's columns, so the marts build and stay empty instead of failing.
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
    {%- set columns = lake_contracts()[identifier] -%}
    (SELECT {% for name, type in columns %}CAST(NULL AS Nullable({{ type }})) AS {{ name }}{% if not loop.last %}, {% endif %}{% endfor %} WHERE 0)
{%- endmacro %}


{#- Column types of the lake tables (BRIEF data contracts) as ClickHouse reads them from Iceberg. -#}
{% macro lake_contracts() -%}
    {%- set ts = "DateTime64(6, 'UTC')" -%}
    {{ return({
        'raw.quotes': [
            ('source', 'String'), ('ticker', 'String'), ('trade_date', 'Date32'), ('open', 'Float64'),
            ('high', 'Float64'), ('low', 'Float64'), ('close', 'Float64'), ('adj_close', 'Float64'),
            ('volume', 'Float64'), ('currency', 'String'), ('loaded_at', ts), ('load_id', 'String'),
        ],
        'features.fct_daily_features': [
            ('ticker', 'String'), ('trade_date', 'Date32'), ('close', 'Float64'), ('adj_close', 'Float64'),
            ('adj_factor', 'Float64'), ('volume', 'Float64'), ('ret_1d', 'Float64'), ('ret_5d', 'Float64'),
            ('ret_20d', 'Float64'), ('log_ret_1d', 'Float64'), ('log_ret_5d', 'Float64'),
            ('log_ret_20d', 'Float64'), ('vol_5d', 'Float64'), ('vol_20d', 'Float64'), ('vol_60d', 'Float64'),
            ('close_sma_5_ratio', 'Float64'), ('close_sma_20_ratio', 'Float64'),
            ('close_sma_50_ratio', 'Float64'), ('close_sma_200_ratio', 'Float64'), ('ema_12', 'Float64'),
            ('ema_26', 'Float64'), ('macd', 'Float64'), ('macd_signal', 'Float64'), ('rsi_14', 'Float64'),
            ('bb_pct_b_20', 'Float64'), ('volume_z_20', 'Float64'), ('atr_14', 'Float64'),
            ('day_of_week', 'Int32'), ('month', 'Int32'), ('days_since_listing', 'Int32'),
            ('target_close_5d', 'Float64'), ('target_return_5d', 'Float64'),
        ],
        'ml.predictions': [
            ('ticker', 'String'), ('as_of_date', 'Date32'), ('target_date', 'Date32'), ('horizon_days', 'Int32'),
            ('predicted_close', 'Float64'), ('predicted_return', 'Float64'), ('last_close', 'Float64'),
            ('model_name', 'String'), ('model_version', 'String'), ('run_id', 'String'),
            ('feature_snapshot_id', 'Int64'), ('created_at', ts),
        ],
        'ml.prediction_accuracy': [
            ('ticker', 'String'), ('as_of_date', 'Date32'), ('target_date', 'Date32'), ('horizon_days', 'Int32'),
            ('predicted_close', 'Float64'), ('actual_close', 'Float64'), ('error', 'Float64'),
            ('abs_pct_error', 'Float64'), ('direction_hit', 'Bool'), ('model_name', 'String'),
            ('model_version', 'String'), ('evaluated_at', ts),
        ],
        'ml.model_metrics': [
            ('run_id', 'String'), ('model_name', 'String'), ('model_version', 'String'), ('mase', 'Float64'),
            ('mae', 'Float64'), ('rmse', 'Float64'), ('mape', 'Float64'), ('directional_accuracy', 'Float64'),
            ('ic', 'Float64'), ('rank_ic', 'Float64'), ('n_folds', 'Int32'), ('feature_snapshot_id', 'Int64'),
            ('trained_at', ts), ('is_champion', 'Bool'),
        ],
    }) }}
{%- endmacro %}
