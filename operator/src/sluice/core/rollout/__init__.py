"""The rollout state machine: `decide` turns (spec, status, observations, now) into a `Plan`.

Pure: the clock is the `now` parameter and all memory (phase, step, counters, check times) lives in the status,
so a restarted operator continues where the last one stopped. `check_window` and `validation_due` tell the adapter
when to read Prometheus or run the validation gate. docs/rollouts.md describes the states, limits and timing;
docs/architecture.md which module holds what (order: the gates; phases/: one handler per phase; schedule: when;
texts: the words; verdicts: what a check's verdict does; pause: freezing a phase).
"""

from sluice.core.rollout.decide import decide
from sluice.core.rollout.order import GATES, ROLLOUT_PHASES, next_phase
from sluice.core.rollout.schedule import analysed_versions, check_window, next_check_at, validation_due
from sluice.core.rollout.workloads import MAX_REPLICA_RATIO, canary_replicas_for_weight, mirror_percent, model_status

__all__ = [
    "GATES",
    "MAX_REPLICA_RATIO",
    "ROLLOUT_PHASES",
    "analysed_versions",
    "canary_replicas_for_weight",
    "check_window",
    "decide",
    "mirror_percent",
    "model_status",
    "next_check_at",
    "next_phase",
    "validation_due",
]
