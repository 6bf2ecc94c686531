{#-
  Exponential moving averages in SQL, exact (no truncated warm-up):

      ema_0 = seed (the first value when no seed is given)   -> with seed = x_0: ema_0 = x_0
      ema_k = alpha * x_k + (1 - alpha) * ema_{k-1}           alpha = 2 / (n + 1)

  i.e. pandas `Series.ewm(alpha=alpha, adjust=False).mean()` when seeded at the first value. An
  incremental build passes the EMA stored for the row before the first re-emitted row as the seed
  and continues the recursion from there.

  DuckDB has no scan over rows, and a row-by-row recursive CTE is as deep as the longest series.
  So the recursion is split into blocks of B rows (var ema_block_rows). With beta = 1 - alpha, row j
  of block b (rows k = bB + j), whose incoming state S_b is the EMA of the row before the block, is

      ema_k = beta^(j+1) * S_b + L_k,   L_k = alpha * beta^j * sum_{i<=j} beta^(-i) * x_{bB+i}

  L_k is a window sum over the block (ema_local), and S_{b+1} = beta^B * S_b + L at j = B-1 is a
  recursive CTE over blocks only (ema_carry_ctes: depth rows/B, one row per series). beta^(-B) stays
  far from overflow for B = 64 and every alpha used here, so precision is that of a plain sum.

  Rows need: series_id, blk (block number, -1 for rows before the EMA start) and j (row in block).
-#}

{#- L_k of the EMA(n) of column x; needs the named window `<window> as (partition by series_id
    order by rn rows between coalesce(j, 0) preceding and current row)` (the rows of the block up to
    this one) in the same SELECT (DuckDB wants window names unique in the whole query). -#}
{% macro ema_local(x, n, window) -%}
{%- set alpha = 2.0 / (n + 1) -%}
{%- set beta = 1.0 - alpha -%}
{{ alpha }} * power({{ beta }}, j) * sum(power({{ beta }}, -j) * {{ x }}) over {{ window }}
{%- endmacro %}

{#- The final EMA from L_k (column loc) and the block's incoming state (column state). -#}
{% macro ema_final(loc, state, n) -%}
{%- set beta = 1.0 - 2.0 / (n + 1) -%}
power({{ beta }}, j + 1) * {{ state }} + {{ loc }}
{%- endmacro %}

{#- CTEs <name>_ends and <name>_carry(series_id, blk, <state columns>) for several EMAs at once.
    emas: list of [local column, seed expression per series, n]; seeds: a CTE/relation with one row
    per series holding the seed expressions' inputs. The carry's state columns are named s_<local>. -#}
{% macro ema_carry_ctes(name, local_relation, seeds, emas) -%}
{%- set block = var('ema_block_rows', 64) | int -%}
{{ name }}_ends as materialized (
    select series_id, blk{% for e in emas %}, {{ e[0] }}{% endfor %}
    from {{ local_relation }}
    where j = {{ block - 1 }}
),

{{ name }}_carry(series_id, blk{% for e in emas %}, s_{{ e[0] }}{% endfor %}) as (
    select series_id, 0{% for e in emas %}, {{ e[1] }}{% endfor %}
    from {{ seeds }}
    union all
    select
        c.series_id,
        c.blk + 1
        {%- for e in emas %}
        {%- set beta = 1.0 - 2.0 / (e[2] + 1) %},
        {{ beta ** block }} * c.s_{{ e[0] }} + e.{{ e[0] }}
        {%- endfor %}
    from {{ name }}_carry as c
    inner join {{ name }}_ends as e on e.series_id = c.series_id and e.blk = c.blk
)
{%- endmacro %}
