"""The sticky experiment scenario (issue 19) that both the local-cluster e2e and the real-node test run: 100 entity
keys sending 10 requests each at an even split, and the per-arm error query the experiment decides on."""

KEYS = [f"user-{i}" for i in range(100)]
REQUESTS_PER_KEY = 10
SPLIT = 50
SPLIT_TOLERANCE = 15
"""Points the share of requests B answers may be from SPLIT. Which keys land on B is the hash's (each key's arm is
checked exactly): 100 keys put 50% +-5 points on B only about 7 times in 10, so three standard deviations."""
ERRORS = (
    'sum(last_over_time(sluice_serving_experiment_exposures_total{namespace="{{namespace}}",model="{{name}}",'
    'arm="{{arm}}",code=~"5.."}[{{window}}]))'
)
