-- Daily OHLCV per ticker with returns and simple moving averages (on the adjusted close), plus a few
-- technical indicators from the lake's features table when it has them. Moving averages are NULL
-- until the ticker has the full window (20/50/200 trading days).
--
-- Incremental (insert_overwrite, one partition per year): the first day that changed since the last
-- build -- a quote loaded after the newest loaded_at here, or a day past the last one with indicators
-- once the features table has newer indicators -- decides the first year to rebuild; every year from
-- there on is recomputed for all tickers and its partition replaced. The windows re-read 400 calendar
-- days (>= 200 trading days, else the whole history) before that year, so the result equals a full
-- rebuild.

{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    engine='MergeTree()',
    order_by='(ticker, trade_date)',
    partition_by='toYear(trade_date)',
) }}

with

features as (

    select ticker, trade_date, rsi_14, macd, macd_signal, vol_20d
    from {{ lake_source('features', 'fct_daily_features') }}

),

{% if is_incremental() %}

changed as (

    select ticker, min(trade_date) as first_date
    from {{ ref('stg_quotes') }}
    where loaded_at > (select max(loaded_at) from {{ this }})
    group by ticker

    union all

    select f.ticker as ticker, m.last_date + 1 as first_date
    from (
        select ticker, max(trade_date) as last_date
        from features
        where rsi_14 is not null or macd is not null or macd_signal is not null or vol_20d is not null
        group by ticker
    ) as f
    inner join (
        select ticker, maxIf(trade_date, rsi_14 is not null or macd is not null or macd_signal is not null
                             or vol_20d is not null) as last_date
        from {{ this }}
        group by ticker
    ) as m on m.ticker = f.ticker
    where f.last_date > m.last_date

),

rebuild as (

    select if(count() > 0, makeDate32(toYear(min(first_date)), 1, 1), null) as year_start
    from changed

),

history_start as (

    select
        q.ticker as ticker,
        if(countIf(q.trade_date >= r.year_start - 400 and q.trade_date < r.year_start) >= 200,
           any(r.year_start) - 400, toDate32('1900-01-01')) as from_date
    from {{ ref('stg_quotes') }} as q
    cross join rebuild as r
    group by q.ticker

),

{% endif %}

quotes as (

    select q.ticker as ticker, q.trade_date as trade_date, q.source as source, q.currency as currency,
        q.open as open, q.high as high, q.low as low, q.close as close, q.adj_close as adj_close,
        q.volume as volume, q.loaded_at as loaded_at
    from {{ ref('stg_quotes') }} as q
    {% if is_incremental() -%}
    inner join history_start as h on h.ticker = q.ticker
    where q.trade_date >= h.from_date and (select year_start from rebuild) is not null
    {%- endif %}

),

windowed as (

    select
        *,
        lagInFrame(adj_close, 1) over w_all as adj_close_1d_ago,
        lagInFrame(adj_close, 5) over w_all as adj_close_5d_ago,
        lagInFrame(adj_close, 20) over w_all as adj_close_20d_ago,
        avg(adj_close) over w_20 as avg_20,
        sum(toUInt8(adj_close is not null)) over w_20 as n_20,
        avg(adj_close) over w_50 as avg_50,
        sum(toUInt8(adj_close is not null)) over w_50 as n_50,
        avg(adj_close) over w_200 as avg_200,
        sum(toUInt8(adj_close is not null)) over w_200 as n_200
    from quotes
    window
        w_all as (partition by ticker order by trade_date rows between unbounded preceding and current row),
        w_20 as (partition by ticker order by trade_date rows between 19 preceding and current row),
        w_50 as (partition by ticker order by trade_date rows between 49 preceding and current row),
        w_200 as (partition by ticker order by trade_date rows between 199 preceding and current row)

)

select
    w.ticker as ticker,
    w.trade_date as trade_date,
    w.source as source,
    w.currency as currency,
    w.open as open,
    w.high as high,
    w.low as low,
    w.close as close,
    w.adj_close as adj_close,
    w.volume as volume,
    w.adj_close / nullIf(w.adj_close_1d_ago, 0) - 1 as ret_1d,
    w.adj_close / nullIf(w.adj_close_5d_ago, 0) - 1 as ret_5d,
    w.adj_close / nullIf(w.adj_close_20d_ago, 0) - 1 as ret_20d,
    log(w.adj_close / nullIf(w.adj_close_1d_ago, 0)) as log_ret_1d,
    if(w.n_20 = 20, w.avg_20, null) as sma_20,
    if(w.n_50 = 50, w.avg_50, null) as sma_50,
    if(w.n_200 = 200, w.avg_200, null) as sma_200,
    f.rsi_14 as rsi_14,
    f.macd as macd,
    f.macd_signal as macd_signal,
    f.vol_20d as vol_20d,
    w.loaded_at as loaded_at
from windowed as w
left join features as f on f.ticker = w.ticker and f.trade_date = w.trade_date
{% if is_incremental() -%}
where w.trade_date >= (select year_start from rebuild)
{%- endif %}
