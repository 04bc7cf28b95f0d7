"""Status rows and aggregates (filled by reports.ingest)."""
