"""Ingestion: quote sources -> dlt (extract, normalize, state) -> Iceberg ``raw`` tables, one atomic
commit per table per load. Entry point: :func:`lakehouse.ingestion.run.run_ingest`."""
