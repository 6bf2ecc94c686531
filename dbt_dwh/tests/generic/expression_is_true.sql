{#- Every row satisfies `expression` (rows where it is NULL are not checked). -#}
{% test expression_is_true(model, expression) %}
select * from {{ model }} where not ({{ expression }})
{% endtest %}
