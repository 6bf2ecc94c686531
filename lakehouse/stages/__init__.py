"""Stages of the main job. Each stage module ``lakehouse.stages.<name>`` defines
``run_stage(cfg, console) -> str`` (a one-line detail for the summary)."""
