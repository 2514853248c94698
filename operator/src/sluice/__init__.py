"""sluice: a Kubernetes operator that deploys ML models and rolls new versions out as analysed canaries."""
