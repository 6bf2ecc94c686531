"""The pipeline as a graph of data assets.

- :mod:`~lakehouse.pipeline.graph`: the one declaration of the stages, what each reads and writes;
- :mod:`~lakehouse.pipeline.assets`: the current version of each asset (snapshot ids, model versions);
- :mod:`~lakehouse.pipeline.fingerprint`: what a stage consumed, and whether it must run again;
- :mod:`~lakehouse.pipeline.state`: the record of successful runs (Iceberg ``pipeline.stage_runs``);
- :mod:`~lakehouse.pipeline.runner`: ``lakehouse run`` / ``plan`` and one stage for a command or Airflow;
- :mod:`~lakehouse.pipeline.render`: the run summary, the plan table and the Mermaid diagram;
- :mod:`~lakehouse.pipeline.stage`: what a stage function gets (:class:`StageContext`) and raises
  (:class:`StageFailed`).
"""
