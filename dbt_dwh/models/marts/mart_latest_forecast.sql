-- One row per ticker: the latest actual close and the newest forecast for the next trading days
-- (horizons 1..5 of the latest as-of date; the newest run when a day was predicted more than once),
-- with the expected change of the furthest horizon against the close the forecast started from.

{{ config(
    engine='MergeTree()',
    order_by='ticker',
) }}

with

predictions as (

    select *
    from {{ lake_source('ml', 'predictions') }}
    where ticker is not null and as_of_date is not null and horizon_days is not null

),

latest_as_of as (

    select ticker, max(as_of_date) as as_of_date
    from predictions
    group by ticker

),

latest as (

    select p.*
    from predictions as p
    inner join latest_as_of as l on l.ticker = p.ticker and l.as_of_date = p.as_of_date
    order by p.created_at desc
    limit 1 by p.ticker, p.horizon_days

),

forecast as (

    select
        assumeNotNull(ticker) as ticker,
        any(as_of_date) as forecast_as_of,
        argMax(model_name, created_at) as model_name,
        argMax(model_version, created_at) as model_version,
        argMax(run_id, created_at) as run_id,
        max(created_at) as predicted_at,
        any(last_close) as base_close,
        max(horizon_days) as max_horizon,
        argMax(target_date, horizon_days) as furthest_target_date,
        argMax(predicted_close, horizon_days) as forecast_close,
        anyIf(predicted_close, horizon_days = 1) as forecast_1d,
        anyIf(predicted_close, horizon_days = 2) as forecast_2d,
        anyIf(predicted_close, horizon_days = 3) as forecast_3d,
        anyIf(predicted_close, horizon_days = 4) as forecast_4d,
        anyIf(predicted_close, horizon_days = 5) as forecast_5d,
        anyIf(target_date, horizon_days = 1) as target_date_1d,
        anyIf(target_date, horizon_days = 5) as target_date_5d
    from latest
    group by ticker

),

last_prices as (

    select ticker, max(trade_date) as last_trade_date, argMax(adj_close, trade_date) as last_close
    from {{ ref('stg_quotes') }}
    group by ticker

)

select
    f.ticker as ticker,
    p.last_trade_date as last_trade_date,
    p.last_close as last_close,
    f.forecast_as_of as as_of_date,
    f.base_close as base_close,
    f.forecast_1d as forecast_1d,
    f.forecast_2d as forecast_2d,
    f.forecast_3d as forecast_3d,
    f.forecast_4d as forecast_4d,
    f.forecast_5d as forecast_5d,
    f.target_date_1d as target_date_1d,
    f.target_date_5d as target_date_5d,
    f.max_horizon as horizon_days,
    f.furthest_target_date as target_date,
    f.forecast_close as forecast_close,
    (f.forecast_close / nullIf(f.base_close, 0) - 1) * 100 as expected_change_pct,
    f.model_name as model_name,
    f.model_version as model_version,
    f.run_id as run_id,
    f.predicted_at as predicted_at,
    toBool(p.last_trade_date > f.forecast_as_of) as is_stale
from forecast as f
left join last_prices as p on p.ticker = f.ticker
