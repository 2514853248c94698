"""sluice's Kubernetes API: the ModelDeployment resource and the value types it uses."""
