-- Daily features per ticker and trading day (definitions: macros/daily_features.sql), written to the
-- Iceberg table lake.features.fct_daily_features by the lake_table materialization.
--
-- Full refresh: every row of every ticker. Incremental: per ticker, the first staging row that is
-- new or differs from the stored row (close, adj_close, volume) or disappeared, moved back 5 rows
-- (their 5-day targets change), is the first row re-emitted; windows re-read `lookback_rows` of
-- history before it and the EMAs continue from the EMA states stored in the row before it. The
-- materialization replaces the stored rows of those tickers from that day on, in one commit.

{{ config(
    materialized='lake_table',
    series_key='ticker',
    order_key='trade_date',
) }}

with recursive

staging as (

    select
        ticker, trade_date, close, adj_close, adj_factor, volume, adj_high, adj_low, adj_volume
    from {{ ref('stg_quotes') }}

),

numbered as (

    select
        *,
        row_number() over (partition by ticker order by trade_date) - 1 as rn,
        min(trade_date) over (partition by ticker) as listing_date
    from staging

),

{% if lake_is_incremental() %}

existing as (

    select ticker, trade_date, close, adj_close, volume, ema_12, ema_26, macd_signal
    from {{ this }}

),

changed as (

    select
        coalesce(n.ticker, e.ticker) as ticker,
        min(coalesce(n.trade_date, e.trade_date)) as first_changed_date
    from numbered as n
    full outer join existing as e on e.ticker = n.ticker and e.trade_date = n.trade_date
    where n.ticker is null
        or e.ticker is null
        or n.close is distinct from e.close
        or n.adj_close is distinct from e.adj_close
        or n.volume is distinct from e.volume
    group by 1

),

plan as (

    select
        c.ticker,
        greatest(
            coalesce(min(n.rn) filter (where n.trade_date >= c.first_changed_date), max(n.rn) + 1) - 5,
            0
        ) as emit_from_rn
    from changed as c
    inner join numbered as n on n.ticker = c.ticker
    group by c.ticker, c.first_changed_date

),

seeds as (

    select
        p.ticker,
        p.emit_from_rn,
        e.ema_12 as seed_ema_12,
        e.ema_26 as seed_ema_26,
        e.macd_signal as seed_macd_signal,
        -- without a stored state to continue from, the EMAs restart from the listing
        case when e.ema_12 is null then 0 else p.emit_from_rn end as ema_start_rn
    from plan as p
    left join numbered as n on n.ticker = p.ticker and n.rn = p.emit_from_rn - 1
    left join existing as e on e.ticker = n.ticker and e.trade_date = n.trade_date

),

feature_input as (

    select
        n.ticker as series_id,
        n.*,
        s.emit_from_rn,
        s.ema_start_rn,
        s.seed_ema_12,
        s.seed_ema_26,
        s.seed_macd_signal
    from numbered as n
    inner join seeds as s on s.ticker = n.ticker
    where n.rn >= least(s.ema_start_rn, s.emit_from_rn - {{ var('lookback_rows') }})

),

{% else %}

feature_input as (

    select
        ticker as series_id,
        *,
        0 as emit_from_rn,
        0 as ema_start_rn,
        cast(null as double) as seed_ema_12,
        cast(null as double) as seed_ema_26,
        cast(null as double) as seed_macd_signal
    from numbered

),

{% endif %}

{{ daily_feature_ctes('feature_input', 'features') }},

final as (

    select {{ daily_feature_columns() }}
    from features
    where rn >= emit_from_rn

)

select * from final
