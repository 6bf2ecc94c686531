-- No look-ahead: for a sample of (ticker, day t) pairs, recompute every feature from staging with
-- the history truncated at t (rows after t removed) and compare with the built row. A feature that
-- reads any row after t differs (or is NULL) on the truncated history and fails this test. Targets
-- are excluded: they look ahead by definition.
-- Sample: the first `lookahead_test_tickers` tickers, at row positions `lookahead_test_positions`
-- and at the 6th-last row of each (the last row whose target is known).

{%- set feature_columns = [
    'close', 'adj_close', 'adj_factor', 'volume',
    'ret_1d', 'ret_5d', 'ret_20d', 'log_ret_1d', 'log_ret_5d', 'log_ret_20d',
    'vol_5d', 'vol_20d', 'vol_60d',
    'close_sma_5_ratio', 'close_sma_20_ratio', 'close_sma_50_ratio', 'close_sma_200_ratio',
    'ema_12', 'ema_26', 'macd', 'macd_signal', 'rsi_14', 'bb_pct_b_20', 'volume_z_20', 'atr_14',
    'day_of_week', 'month', 'days_since_listing',
] %}

with recursive

numbered as (

    select
        ticker, trade_date, close, adj_close, adj_factor, volume, adj_high, adj_low, adj_volume,
        row_number() over (partition by ticker order by trade_date) - 1 as rn,
        count(*) over (partition by ticker) as n_rows,
        min(trade_date) over (partition by ticker) as listing_date
    from {{ ref('stg_quotes') }}

),

sample_tickers as (

    select distinct ticker from numbered
    order by ticker
    limit {{ var('lookahead_test_tickers') }}

),

cuts as (

    select n.ticker, n.rn as cut_rn, n.trade_date as cut_date, n.ticker || '@' || n.rn as series_id
    from numbered as n
    inner join sample_tickers as t on t.ticker = n.ticker
    where n.rn in ({{ var('lookahead_test_positions') | join(', ') }}) or n.rn = n.n_rows - 6

),

truncated as (

    select
        c.series_id,
        n.*,
        0 as emit_from_rn,
        0 as ema_start_rn,
        cast(null as double) as seed_ema_12,
        cast(null as double) as seed_ema_26,
        cast(null as double) as seed_macd_signal
    from numbered as n
    inner join cuts as c on c.ticker = n.ticker and n.rn <= c.cut_rn

),

{{ daily_feature_ctes('truncated', 'recomputed') }},

at_cut as (

    select r.*
    from recomputed as r
    inner join cuts as c on c.series_id = r.series_id and c.cut_rn = r.rn

),

built as (

    select * from {{ ref('fct_daily_features') }}

),

mismatches as (

    {%- for col in feature_columns %}
    select
        a.ticker, a.trade_date, '{{ col }}' as feature,
        cast(a.{{ col }} as double) as recomputed_value,
        cast(b.{{ col }} as double) as built_value
    from at_cut as a
    left join built as b on b.ticker = a.ticker and b.trade_date = a.trade_date
    -- equal, both NULL, or within 1e-9 relative; a NULL on one side only is a mismatch
    where not coalesce(
        a.{{ col }} is not distinct from b.{{ col }}
        or abs(a.{{ col }} - b.{{ col }}) <= 1e-9 * greatest(1.0, abs(b.{{ col }})),
        false
    )
    union all
    {%- endfor %}
    -- a sample that compares nothing proves nothing
    select null, null, 'no (ticker, day) pair was sampled', null, null
    where not exists (select 1 from at_cut) and exists (select 1 from numbered)

)

select * from mismatches
