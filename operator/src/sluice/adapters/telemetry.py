"""The operator's own Prometheus metrics, served on `--metrics-port` (SLUICE_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter(
    "sluice_operator_reconciles_total",
    "Reconciles of ModelDeployments by outcome: ok, conflict (retried at once), error (retried with backoff)",
    ["outcome"],
)
RECONCILE_SECONDS = Histogram(
    "sluice_operator_reconcile_duration_seconds",
    "Time one reconcile of one ModelDeployment took",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
KUBE_WRITES = Counter(
    "sluice_operator_kube_write_requests_total",
    "Write requests (POST, PUT, PATCH, DELETE) the operator sent to the Kubernetes API, by method",
    ["method"],
)


def serve(port: int) -> None:
    """Serve /metrics on all interfaces at `port` (0: not at all)."""
    if port:
        start_http_server(port)
