-- One row per (ticker, trade_date): the newest load wins across loads and sources. Typed, with the
-- split/dividend adjustment factor adj_close / close applied to open/high/low and volume so that
-- splits don't look like crashes. Written to the Iceberg table lake.staging.stg_quotes (built once
-- here; dbt_dwh reads it in place).
--
-- Incremental: per ticker, from the first trade_date of a raw row loaded after the newest loaded_at
-- already staged, every day is re-derived from all of its raw rows; the lake_table materialization
-- replaces the ticker's staged rows from that day on, in one commit.

{{ config(
    materialized='lake_table',
    series_key='ticker',
    order_key='trade_date',
) }}

with

source as (

    select * from {{ source('raw', 'quotes') }}
    where ticker is not null and trade_date is not null

),

{% if lake_is_incremental() %}

changed as (

    select ticker, min(trade_date) as from_date
    from source
    where loaded_at > (select coalesce(max(loaded_at), '-infinity'::timestamptz) from {{ this }})
    group by ticker

),

candidates as (

    select s.*
    from source as s
    inner join changed as c on c.ticker = s.ticker and s.trade_date >= c.from_date

),

{% else %}

candidates as (

    select * from source

),

{% endif %}

latest_load as (

    select
        *,
        row_number() over (
            partition by ticker, trade_date
            order by loaded_at desc, load_id desc, source
        ) as load_rank
    from candidates

),

renamed as (

    select
        -- ids
        cast(ticker as varchar) as ticker,
        cast(trade_date as date) as trade_date,
        cast(source as varchar) as source,
        cast(load_id as varchar) as load_id,

        -- prices as traded
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close,
        cast(volume as double) as volume,
        cast(currency as varchar) as currency,

        -- adjusted (sources without an adjusted close: adj_close = close)
        cast(coalesce(adj_close, close) as double) as adj_close,

        -- timestamps
        cast(loaded_at as timestamptz) as loaded_at

    from latest_load
    where load_rank = 1

),

adjusted as (

    select
        *,
        adj_close / close as adj_factor,
        open * (adj_close / close) as adj_open,
        high * (adj_close / close) as adj_high,
        low * (adj_close / close) as adj_low,
        volume / (adj_close / close) as adj_volume
    from renamed

),

final as (

    select
        ticker, trade_date, source, load_id,
        open, high, low, close, volume, currency,
        adj_factor, adj_open, adj_high, adj_low, adj_close, adj_volume,
        loaded_at
    from adjusted

)

select * from final
