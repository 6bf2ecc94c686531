-- The lake's staging.stg_quotes (built once, by dbt_lake, as an Iceberg table): one row per
-- (ticker, trade_date), the newest load winning, with adjusted prices. Ephemeral: the marts read the
-- Iceberg table through ClickHouse's reader pinned to the catalog's current metadata file; nothing is
-- copied into ClickHouse.

{{ config(materialized='ephemeral') }}

select
    assumeNotNull(ticker) as ticker,
    assumeNotNull(trade_date) as trade_date,
    source,
    open,
    high,
    low,
    close,
    adj_close,
    volume,
    currency,
    loaded_at,
    load_id
from {{ lake_source('staging', 'stg_quotes') }}
where ticker is not null and trade_date is not null
