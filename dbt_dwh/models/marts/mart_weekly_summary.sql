-- Per ticker and calendar week (weeks start on Monday): open of the first trading day, close of the
-- last, high/low/volume over the week, the week-over-week return of the adjusted close, and the
-- volatility (sample standard deviation) of the week's daily returns.
--
-- Incremental (insert_overwrite, one partition per year of week_start): from the year of the first week
-- with a daily row loaded after the newest loaded_at here, every year is recomputed for all tickers
-- (re-reading five weeks before it for the week-over-week return) and its partition replaced.

{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite',
    engine='MergeTree()',
    order_by='(ticker, week_start)',
    partition_by='toYear(week_start)',
) }}

with

{% if is_incremental() %}

rebuild as (

    select if(count() > 0, makeDate32(toYear(toMonday(min(trade_date))), 1, 1), null) as year_start
    from {{ ref('mart_daily_prices') }}
    where loaded_at > (select max(loaded_at) from {{ this }})

),

{% endif %}

weeks as (

    select
        ticker,
        toMonday(trade_date) as week_start,
        min(trade_date) as first_trade_date,
        max(trade_date) as last_trade_date,
        count() as trading_days,
        argMin(open, trade_date) as open,
        argMax(close, trade_date) as close,
        max(high) as high,
        min(low) as low,
        sum(volume) as volume,
        argMax(adj_close, trade_date) as adj_close,
        if(count(ret_1d) >= 2, stddevSamp(ret_1d), null) as volatility,
        max(loaded_at) as loaded_at
    from {{ ref('mart_daily_prices') }}
    {% if is_incremental() -%}
    where trade_date >= (select year_start - 35 from rebuild)
    {%- endif %}
    group by ticker, week_start

),

summary as (

    select
        ticker,
        week_start,
        first_trade_date,
        last_trade_date,
        trading_days,
        open,
        close,
        high,
        low,
        volume,
        adj_close,
        adj_close / nullIf(lagInFrame(adj_close, 1) over w, 0) - 1 as weekly_return,
        volatility,
        loaded_at
    from weeks
    window w as (partition by ticker order by week_start rows between unbounded preceding and current row)

)

select *
from summary
{% if is_incremental() -%}
where week_start >= (select year_start from rebuild)
{%- endif %}
