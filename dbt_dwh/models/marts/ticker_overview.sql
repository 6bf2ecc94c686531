-- A view (computed at query time from mart_daily_prices): one row per ticker with its latest day,
-- the change on that day, the moving averages and the 52-week (252 trading days) range.

{{ config(materialized='view') }}

with

ranked as (

    select
        *,
        row_number() over (partition by ticker order by trade_date desc) as days_back
    from {{ ref('mart_daily_prices') }}

)

select
    ticker,
    max(trade_date) as last_trade_date,
    argMax(close, trade_date) as last_close,
    argMax(adj_close, trade_date) as last_adj_close,
    argMax(ret_1d, trade_date) * 100 as change_pct_1d,
    argMax(sma_50, trade_date) as sma_50,
    argMax(sma_200, trade_date) as sma_200,
    max(high) as high_52w,
    min(low) as low_52w,
    count() as days_in_52w
from ranked
where days_back <= 252
group by ticker
