"""Adapters between the pure core and the world: Kubernetes, Prometheus, traffic routers, the clock."""
