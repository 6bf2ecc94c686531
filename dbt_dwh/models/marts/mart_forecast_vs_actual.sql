-- Every forecast next to what happened: the live forecasts of the champion (ml.predictions) and the
-- backtest's point-in-time weekly forecasts of every model (ml.backtest_predictions), so dashboards show
-- years of forecast against actual. The realized return is adj_close(target) / adj_close(as-of) - 1 with
-- both closes from the current stg_quotes (one price basis: a later split or dividend re-adjustment
-- cancels out), and the realized close is put on the forecast's basis: base_close * (1 + actual_return).
-- Live days 1-4 are interpolations (is_interpolated), not forecasts: keep them out of any score.

{{ config(
    engine='MergeTree()',
    order_by='(forecast_source, model_name, ticker, as_of_date, horizon_days)',
    partition_by='toYear(as_of_date)',
) }}

with

live as (

    select *
    from {{ lake_source('ml', 'predictions') }}
    where ticker is not null and as_of_date is not null and horizon_days is not null
    order by created_at desc
    limit 1 by ticker, as_of_date, horizon_days

),

backtest as (

    select *
    from {{ lake_source('ml', 'backtest_predictions') }}
    where model_name is not null and ticker is not null and as_of_date is not null

),

forecasts as (

    select
        'live' as forecast_source,
        assumeNotNull(ticker) as ticker,
        assumeNotNull(as_of_date) as as_of_date,
        target_date,
        assumeNotNull(horizon_days) as horizon_days,
        coalesce(is_interpolated, horizon_days != 5) as is_interpolated,
        coalesce(model_name, '') as model_name,
        model_version,
        run_id,
        last_close as base_close,
        predicted_close,
        predicted_return,
        created_at as predicted_at
    from live

    union all

    select
        'backtest' as forecast_source,
        assumeNotNull(ticker) as ticker,
        assumeNotNull(as_of_date) as as_of_date,
        target_date,
        assumeNotNull(horizon_days) as horizon_days,
        false as is_interpolated,
        assumeNotNull(model_name) as model_name,
        cast(null as Nullable(String)) as model_version,
        run_id,
        last_close as base_close,
        predicted_close,
        predicted_return,
        created_at as predicted_at
    from backtest

),

prices as (

    -- renamed so that the forecasts' columns stay unambiguous after the two joins
    select ticker as price_ticker, trade_date as price_date, adj_close as price_close
    from {{ ref('stg_quotes') }}
    where adj_close > 0

),

realized as (

    select
        f.*,
        a.price_close / b.price_close - 1 as actual_return
    from forecasts as f
    left join prices as b on b.price_ticker = f.ticker and b.price_date = f.as_of_date
    left join prices as a on a.price_ticker = f.ticker and a.price_date = f.target_date

)

select
    forecast_source,
    ticker,
    as_of_date,
    target_date,
    horizon_days,
    is_interpolated,
    model_name,
    model_version,
    run_id,
    base_close,
    predicted_close,
    predicted_return,
    actual_return,
    base_close * (1 + actual_return) as actual_close,
    toBool(actual_return is not null) as is_realized,
    actual_return - predicted_return as return_error,
    base_close * (1 + actual_return) - predicted_close as error,
    abs(base_close * (1 + actual_return) - predicted_close) / nullIf(base_close * (1 + actual_return), 0) * 100
        as abs_pct_error,
    if(actual_return is null or predicted_return = 0, null, toBool(sign(predicted_return) = sign(actual_return)))
        as direction_hit,
    predicted_at
from realized
