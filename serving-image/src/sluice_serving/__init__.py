"""sluice's model server: Open Inference Protocol (V2) REST with Prometheus metrics."""

__version__ = "0.1.0"
