"""The pure rollout core: decisions from (spec, status, observations, now), with no I/O."""
