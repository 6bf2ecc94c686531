{#-
  The daily feature computation, shared by fct_daily_features and the no-look-ahead test (which
  runs it again on histories truncated at a day t).

  input (a CTE name) has one row per series and trading day with columns:
    series_id, ticker, rn (0-based row number in the ticker's full history), trade_date,
    close, adj_close, adj_factor, volume, adj_high, adj_low, adj_volume, listing_date,
    ema_start_rn (first row of the EMA recursion), seed_ema_12, seed_ema_26, seed_macd_signal
    (EMA states of the row before ema_start_rn; NULL = seed at the first value), emit_from_rn
    (passed through: the first row the caller keeps).
  Defines CTEs <name>_base, _pass1, _ema_*, _emas, _pass2, _signal_*, _windows and <name>.
  Every feature of row t reads rows <= t of its series; only the targets read row t+5.

  Definitions (x = adj_close, rows are trading days of the ticker, windows include day t):
    ret_Nd          x_t / x_{t-N} - 1;   log_ret_Nd = ln(x_t / x_{t-N})
    vol_Nd          sample std dev (n-1) of log_ret_1d over the last N rows, daily (not annualized)
    close_sma_N_ratio  x_t / mean(x over the last N rows)
    ema_12, ema_26  EMA of x, alpha = 2/(n+1), seeded at the first value (macros/ema.sql)
    macd            ema_12 - ema_26;  macd_signal = EMA(9) of macd seeded at the first macd (0)
    rsi_14          Cutler's RSI (simple averages, not Wilder's smoothing): over the last 14 changes
                    d = x_t - x_{t-1}: 100 * G / (G + L), G = sum(max(d,0)), L = sum(max(-d,0));
                    50 when all 14 are 0
    bb_pct_b_20     (x - (sma20 - 2 sd20)) / (4 sd20), sd20 = population std dev of x over 20 rows
    volume_z_20     (v - mean(v)) / sample sd(v) over the last 20 rows, v = adj_volume
    atr_14          mean of the true range over the last 14 rows (simple mean, not Wilder's),
                    TR = max(h - l, |h - x_{t-1}|, |l - x_{t-1}|) on adjusted high/low
    day_of_week     ISO: 1 = Monday .. 7 = Sunday;  month 1..12
    days_since_listing  calendar days since the ticker's first trade_date in the data
    target_close_5d x_{t+5};  target_return_5d = x_{t+5} / x_t - 1 (NULL when t+5 is not known yet)
  A windowed feature is NULL until its window is full (the ticker has enough rows up to t; prices are
  positive and non-null, as ingestion validates).
-#}
{% macro daily_feature_ctes(input, name) -%}
{%- set block = var('ema_block_rows', 64) | int -%}
{{ name }}_base as (
    select
        *,
        -- EMA blocks (macros/ema.sql); rows before ema_start_rn (look-back only) are in block -1
        case when rn >= ema_start_rn then (rn - ema_start_rn) // {{ block }} else -1 end as blk,
        case when rn >= ema_start_rn then (rn - ema_start_rn) % {{ block }} end as j
    from {{ input }}
),

-- pass 1 over each series: daily changes and the in-block parts of EMA 12/26
{{ name }}_pass1 as (
    select
        series_id, ticker, trade_date, rn, blk, j, close, adj_close, adj_factor, volume, adj_volume,
        listing_date, emit_from_rn, ema_start_rn,
        adj_close - lag(adj_close) over w_prev as chg,
        ln(adj_close / lag(adj_close) over w_prev) as log_ret_1d,
        case when lag(adj_close) over w_prev is not null then greatest(
            adj_high - adj_low,
            abs(adj_high - lag(adj_close) over w_prev),
            abs(adj_low - lag(adj_close) over w_prev)
        ) end as true_range,
        {{ ema_local('adj_close', 12, name ~ '_w_ema') }} as loc_ema_12,
        {{ ema_local('adj_close', 26, name ~ '_w_ema') }} as loc_ema_26
    from {{ name }}_base
    window
        w_prev as (partition by series_id order by rn),
        {{ name }}_w_ema as (partition by series_id order by rn
            rows between coalesce(j, 0) preceding and current row)
),

{{ name }}_ema_seeds as (
    select
        series_id,
        coalesce(any_value(seed_ema_12), any_value(adj_close) filter (where rn = ema_start_rn)) as seed_12,
        coalesce(any_value(seed_ema_26), any_value(adj_close) filter (where rn = ema_start_rn)) as seed_26
    from {{ input }}
    group by series_id
),

{{ ema_carry_ctes(name ~ '_ema', name ~ '_pass1', name ~ '_ema_seeds',
    [['loc_ema_12', 'seed_12', 12], ['loc_ema_26', 'seed_26', 26]]) }},

{{ name }}_emas as (
    select
        l.*,
        {{ ema_final('l.loc_ema_12', 'c.s_loc_ema_12', 12) }} as ema_12,
        {{ ema_final('l.loc_ema_26', 'c.s_loc_ema_26', 26) }} as ema_26,
        {{ ema_final('l.loc_ema_12', 'c.s_loc_ema_12', 12) }}
            - ({{ ema_final('l.loc_ema_26', 'c.s_loc_ema_26', 26) }}) as macd
    from {{ name }}_pass1 as l
    left join {{ name }}_ema_carry as c on c.series_id = l.series_id and c.blk = l.blk
),

-- pass 2 over each series: each windowed aggregate once (DuckDB does not share repeated window
-- expressions), and the in-block part of the MACD signal
{{ name }}_pass2 as (
    select
        b.*,
        lag(adj_close, 1) over w as prev_1,
        lag(adj_close, 5) over w as prev_5,
        lag(adj_close, 20) over w as prev_20,
        stddev_samp(log_ret_1d) over w5 as sd_log_ret_5,
        stddev_samp(log_ret_1d) over w20 as sd_log_ret_20,
        stddev_samp(log_ret_1d) over w60 as sd_log_ret_60,
        avg(adj_close) over w5 as sma_5,
        avg(adj_close) over w20 as sma_20,
        avg(adj_close) over w50 as sma_50,
        avg(adj_close) over w200 as sma_200,
        stddev_pop(adj_close) over w20 as sd_pop_20,
        sum(greatest(chg, 0)) over w14 as gains_14,
        sum(greatest(-chg, 0)) over w14 as losses_14,
        avg(adj_volume) over w20 as volume_avg_20,
        stddev_samp(adj_volume) over w20 as volume_sd_20,
        avg(true_range) over w14 as true_range_avg_14,
        lead(adj_close, 5) over w as next_5,
        {{ ema_local('macd', 9, name ~ '_w_signal') }} as loc_signal
    from {{ name }}_emas as b
    window
        w as (partition by series_id order by rn),
        w5 as (partition by series_id order by rn rows between 4 preceding and current row),
        w14 as (partition by series_id order by rn rows between 13 preceding and current row),
        w20 as (partition by series_id order by rn rows between 19 preceding and current row),
        w50 as (partition by series_id order by rn rows between 49 preceding and current row),
        w60 as (partition by series_id order by rn rows between 59 preceding and current row),
        w200 as (partition by series_id order by rn rows between 199 preceding and current row),
        {{ name }}_w_signal as (partition by series_id order by rn
            rows between coalesce(j, 0) preceding and current row)
),

{{ name }}_signal_seeds as (
    select
        s.series_id,
        coalesce(any_value(s.seed_macd_signal), any_value(e.macd) filter (where e.rn = e.ema_start_rn))
            as seed_signal
    from {{ input }} as s
    inner join {{ name }}_emas as e on e.series_id = s.series_id and e.rn = s.rn
    where s.rn = s.ema_start_rn
    group by s.series_id
),

{{ ema_carry_ctes(name ~ '_signal', name ~ '_pass2', name ~ '_signal_seeds',
    [['loc_signal', 'seed_signal', 9]]) }},

{{ name }}_windows as (
    select
        l.*,
        {{ ema_final('l.loc_signal', 'c.s_loc_signal', 9) }} as macd_signal
    from {{ name }}_pass2 as l
    left join {{ name }}_signal_carry as c on c.series_id = l.series_id and c.blk = l.blk
),

{{ name }} as (
    -- A window is full when the ticker has enough rows up to t: rn (0-based, over the full history)
    -- >= N - 1 for N prices, >= N for N changes/returns.
    select
        -- ids
        series_id,
        rn,
        emit_from_rn,
        ticker,
        trade_date,

        -- prices
        close,
        adj_close,
        adj_factor,
        volume,

        -- returns
        adj_close / prev_1 - 1 as ret_1d,
        adj_close / prev_5 - 1 as ret_5d,
        adj_close / prev_20 - 1 as ret_20d,
        log_ret_1d,
        ln(adj_close / prev_5) as log_ret_5d,
        ln(adj_close / prev_20) as log_ret_20d,

        -- volatility of daily log returns
        case when rn >= 5 then sd_log_ret_5 end as vol_5d,
        case when rn >= 20 then sd_log_ret_20 end as vol_20d,
        case when rn >= 60 then sd_log_ret_60 end as vol_60d,

        -- trend
        case when rn >= 4 then adj_close / sma_5 end as close_sma_5_ratio,
        case when rn >= 19 then adj_close / sma_20 end as close_sma_20_ratio,
        case when rn >= 49 then adj_close / sma_50 end as close_sma_50_ratio,
        case when rn >= 199 then adj_close / sma_200 end as close_sma_200_ratio,
        ema_12,
        ema_26,
        macd,
        macd_signal,

        -- oscillators; RSI = 100 * (gains / (gains + losses)): the ratio of sums >= 0 is <= 1 in
        -- floating point too (100 * gains / ... could round to 100.00000000000001)
        case when rn >= 14 then
            coalesce(100 * (gains_14 / nullif(gains_14 + losses_14, 0)), 50)
        end as rsi_14,
        case when rn >= 19 then
            (adj_close - (sma_20 - 2 * sd_pop_20)) / nullif(4 * sd_pop_20, 0)
        end as bb_pct_b_20,
        case when rn >= 19 then
            (adj_volume - volume_avg_20) / nullif(volume_sd_20, 0)
        end as volume_z_20,
        case when rn >= 14 then true_range_avg_14 end as atr_14,

        -- calendar
        cast(isodow(trade_date) as integer) as day_of_week,
        cast(month(trade_date) as integer) as month,
        cast(trade_date - listing_date as integer) as days_since_listing,

        -- targets (the only columns that read ahead)
        next_5 as target_close_5d,
        next_5 / adj_close - 1 as target_return_5d

    from {{ name }}_windows
)
{%- endmacro %}

{#- The contract columns of features.fct_daily_features, in order. -#}
{% macro daily_feature_columns() -%}
ticker, trade_date, close, adj_close, adj_factor, volume,
ret_1d, ret_5d, ret_20d, log_ret_1d, log_ret_5d, log_ret_20d,
vol_5d, vol_20d, vol_60d, close_sma_5_ratio, close_sma_20_ratio, close_sma_50_ratio, close_sma_200_ratio,
ema_12, ema_26, macd, macd_signal, rsi_14, bb_pct_b_20, volume_z_20, atr_14,
day_of_week, month, days_since_listing, target_close_5d, target_return_5d
{%- endmacro %}
