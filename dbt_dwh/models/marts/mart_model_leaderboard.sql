-- One row per model: the scores of its newest selection run (ml.model_metrics) on the untouched holdout
-- (ranked by holdout MASE) and on the cv split it was chosen on, all in 5-day returns per ticker with
-- equal ticker weights, next to its whole backtest (ml.backtest_predictions) and, for the models that
-- served live forecasts, their realized 5-day forecasts (ml.prediction_accuracy, interpolations excluded).
-- Read dir_acc against up_rate (its base rate) and the Diebold-Mariano p-value against naive.

{{ config(
    engine='MergeTree()',
    order_by='model_name',
) }}

with

runs as (

    select *
    from {{ lake_source('ml', 'model_metrics') }}
    where model_name is not null and split in ('cv', 'holdout')
    order by trained_at desc
    limit 1 by model_name, split

),

holdout as (select * from runs where split = 'holdout'),

cv as (select * from runs where split = 'cv'),

backtest as (

    select
        model_name,
        count() as n_backtest,
        countIf(actual_return is not null) as n_backtest_realized,
        min(as_of_date) as backtest_first_as_of,
        max(as_of_date) as backtest_last_as_of,
        avgIf(abs(predicted_return - actual_return), actual_return is not null) as backtest_mae,
        avgIf(toUInt8(sign(predicted_return) = sign(actual_return)), predicted_return != 0 and actual_return != 0)
            as backtest_dir_acc,
        avgIf(toUInt8(actual_return > 0), actual_return is not null and actual_return != 0) as backtest_up_rate
    from {{ lake_source('ml', 'backtest_predictions') }}
    where model_name is not null
    group by model_name

),

live as (

    select
        model_name,
        count() as n_evaluated,
        avg(abs(return_error)) as live_mae,
        avg(toUInt8(direction_hit)) as live_dir_acc,
        max(evaluated_at) as last_evaluated_at
    from {{ lake_source('ml', 'prediction_accuracy') }}
    where model_name is not null and not coalesce(is_interpolated, horizon_days != 5)
    group by model_name

)

select
    row_number() over (order by h.mase asc nulls last, h.model_name) as rank,
    assumeNotNull(h.model_name) as model_name,
    h.model_version as model_version,
    h.run_id as run_id,
    h.trained_at as trained_at,
    h.is_candidate as is_candidate,
    h.is_champion as is_champion,
    h.decision as decision,
    h.period_start as holdout_start,
    h.period_end as holdout_end,
    h.mase as holdout_mase,
    h.rel_mae as holdout_rel_mae,
    h.dir_acc as holdout_dir_acc,
    h.up_rate as holdout_up_rate,
    h.ic as holdout_ic,
    h.ic_tstat as holdout_ic_tstat,
    h.rank_ic as holdout_rank_ic,
    h.dm_stat as holdout_dm_stat,
    h.dm_pvalue as holdout_dm_pvalue,
    h.n_obs as holdout_n_obs,
    c.mase as cv_mase,
    c.rel_mae as cv_rel_mae,
    c.dir_acc as cv_dir_acc,
    c.up_rate as cv_up_rate,
    c.dm_pvalue as cv_dm_pvalue,
    coalesce(b.n_backtest, 0) as n_backtest,
    coalesce(b.n_backtest_realized, 0) as n_backtest_realized,
    b.backtest_first_as_of as backtest_first_as_of,
    b.backtest_last_as_of as backtest_last_as_of,
    b.backtest_mae as backtest_mae,
    b.backtest_dir_acc as backtest_dir_acc,
    b.backtest_up_rate as backtest_up_rate,
    coalesce(l.n_evaluated, 0) as n_evaluated,
    l.live_mae as live_mae,
    l.live_dir_acc as live_dir_acc,
    l.last_evaluated_at as last_evaluated_at
from holdout as h
left join cv as c on c.model_name = h.model_name
left join backtest as b on b.model_name = h.model_name
left join live as l on l.model_name = h.model_name
