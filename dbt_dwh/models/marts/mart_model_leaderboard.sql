-- Per model and registered version: the walk-forward metrics of its newest training run (ml.model_metrics),
-- ranked by MASE (lower is better), with the live accuracy of its evaluated predictions
-- (ml.prediction_accuracy) next to them.

{{ config(
    engine='MergeTree()',
    order_by='(model_name, model_version)',
) }}

with

runs as (

    select *
    from {{ lake_source('ml', 'model_metrics') }}
    where model_name is not null and model_version is not null
    order by trained_at desc
    limit 1 by model_name, model_version

),

live as (

    select
        model_name,
        model_version,
        count() as n_evaluated,
        avg(abs_pct_error) as live_mape,
        avg(toUInt8(direction_hit)) as live_directional_accuracy,
        max(evaluated_at) as last_evaluated_at
    from {{ lake_source('ml', 'prediction_accuracy') }}
    where model_name is not null and model_version is not null
    group by model_name, model_version

)

select
    row_number() over (order by r.mase asc nulls last, r.mae asc nulls last, r.model_name, r.model_version) as rank,
    assumeNotNull(r.model_name) as model_name,
    assumeNotNull(r.model_version) as model_version,
    r.run_id as run_id,
    r.is_champion as is_champion,
    r.mase as mase,
    r.mae as mae,
    r.rmse as rmse,
    r.mape as mape,
    r.directional_accuracy as directional_accuracy,
    r.ic as ic,
    r.rank_ic as rank_ic,
    r.n_folds as n_folds,
    r.trained_at as trained_at,
    coalesce(l.n_evaluated, 0) as n_evaluated,
    l.live_mape as live_mape,
    l.live_directional_accuracy as live_directional_accuracy,
    l.last_evaluated_at as last_evaluated_at
from runs as r
left join live as l on l.model_name = r.model_name and l.model_version = r.model_version
