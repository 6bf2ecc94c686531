-- Every prediction next to the realized adjusted close of its target date (NULL until that day has a
-- quote): error, absolute percentage error and whether the predicted direction was right.

{{ config(
    engine='MergeTree()',
    order_by='(ticker, as_of_date, horizon_days)',
    partition_by='toYear(as_of_date)',
) }}

with

predictions as (

    select *
    from {{ lake_source('ml', 'predictions') }}
    where ticker is not null and as_of_date is not null and horizon_days is not null
    order by created_at desc
    limit 1 by ticker, as_of_date, horizon_days

),

actuals as (

    select ticker, trade_date, adj_close
    from {{ ref('stg_quotes') }}

)

select
    assumeNotNull(p.ticker) as ticker,
    assumeNotNull(p.as_of_date) as as_of_date,
    p.target_date as target_date,
    assumeNotNull(p.horizon_days) as horizon_days,
    p.model_name as model_name,
    p.model_version as model_version,
    p.run_id as run_id,
    p.last_close as base_close,
    p.predicted_close as predicted_close,
    p.predicted_return as predicted_return,
    a.adj_close as actual_close,
    toBool(a.adj_close is not null) as is_realized,
    a.adj_close - p.predicted_close as error,
    abs(a.adj_close - p.predicted_close) / nullIf(a.adj_close, 0) * 100 as abs_pct_error,
    if(a.adj_close is null, null, toBool(sign(p.predicted_close - p.last_close) = sign(a.adj_close - p.last_close)))
        as direction_hit,
    p.created_at as predicted_at
from predictions as p
left join actuals as a on a.ticker = p.ticker and a.trade_date = p.target_date
