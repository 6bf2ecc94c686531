-- Every ticker has exactly as many feature rows as staged quote rows (no day lost or duplicated).

with

staged as (
    select ticker, count(*) as staged_rows from {{ ref('stg_quotes') }} group by ticker
),

featured as (
    select ticker, count(*) as feature_rows from {{ ref('fct_daily_features') }} group by ticker
)

select
    coalesce(s.ticker, f.ticker) as ticker,
    s.staged_rows,
    f.feature_rows
from staged as s
full outer join featured as f on f.ticker = s.ticker
where s.staged_rows is distinct from f.feature_rows
