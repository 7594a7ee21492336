"""Local jobs: persisted in SQLite, each run in a worker subprocess that reports progress as JSON lines."""
