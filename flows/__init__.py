"""Prefect flows: orchestration only (fan-out over batches, retries, caching, publishing)."""
