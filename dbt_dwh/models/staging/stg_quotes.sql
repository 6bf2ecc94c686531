-- One row per (ticker, trade_date) from the lake's raw.quotes: the newest load wins across loads and
-- sources (the same rule as dbt_lake's stg_quotes). Sources without an adjusted close get adj_close = close.
--
-- Incremental (insert_overwrite, one partition per year): the years that received rows loaded after
-- the newest loaded_at here -- from the earliest of them on -- are re-read from the lake and their
-- partitions replaced whole, so a daily ingest rewrites the current year only.

{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    engine='MergeTree()',
    order_by='(ticker, trade_date)',
    partition_by='toYear(trade_date)',
) }}

with

raw as (

    select *
    from {{ lake_source('raw', 'quotes') }}
    where ticker is not null and trade_date is not null

){% if is_incremental() %},

first_changed_year as (

    select if(count() > 0, makeDate32(toYear(min(trade_date)), 1, 1), null) as year_start
    from raw
    where loaded_at > (select max(loaded_at) from {{ this }})

){% endif %}

select
    assumeNotNull(ticker) as ticker,
    assumeNotNull(trade_date) as trade_date,
    source,
    open,
    high,
    low,
    close,
    coalesce(adj_close, close) as adj_close,
    volume,
    currency,
    loaded_at,
    load_id
from raw
{% if is_incremental() -%}
where trade_date >= (select year_start from first_changed_year)
{%- endif %}
order by loaded_at desc, load_id desc, source
limit 1 by ticker, trade_date
