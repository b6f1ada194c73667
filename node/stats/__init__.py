"""Statistics and reports (issue 16, item 1): summary counters kept by an incremental job over the ledger and by
the review workflow, read per date range without scanning the ledger (docs/statistics.md)."""
