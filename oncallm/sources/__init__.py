"""Read-only adapters to the outside world: Kubernetes (live or snapshot), later metrics."""
