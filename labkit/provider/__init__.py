"""The provider: SQLite event log and outbox, polling API, webhook dispatcher."""
