"""Background work: the triage worker that drains the durable queue."""
