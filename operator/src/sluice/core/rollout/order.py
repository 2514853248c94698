"""The order of a rollout's gates, defined once: validation, then the shadow phase, then the live steps.

A gate the spec does not configure is skipped; the steps always run. Adding a gate means adding it to `GATES`,
to `enabled`, and a handler module under `phases/`.
"""

from __future__ import annotations

from sluice.api.v1alpha1 import ModelDeploymentSpec, Phase

GATES: tuple[Phase, ...] = (Phase.VALIDATING, Phase.SHADOWING, Phase.PROGRESSING, Phase.EXPERIMENTING)
"""The phases a canary passes through, in order, before promotion (Progressing: the live steps; Experimenting,
with spec.experiment, instead of them)."""

ROLLOUT_PHASES = frozenset({*GATES, Phase.PAUSED, Phase.PROMOTING})
"""Phases in which a canary version is being rolled out."""

GATE_LABELS = {Phase.VALIDATING: "validation gate", Phase.SHADOWING: "shadow phase"}
"""How the gates before the steps are named in the RolloutStarted Event."""


def enabled(spec: ModelDeploymentSpec, gate: Phase) -> bool:
    """Whether the spec configures `gate` (the steps run unless an experiment replaces them)."""
    match gate:
        case Phase.VALIDATING:
            return spec.validation is not None
        case Phase.SHADOWING:
            return spec.rollout.shadow is not None
        case Phase.PROGRESSING:
            return spec.experiment is None
        case Phase.EXPERIMENTING:
            return spec.experiment is not None
    return True


def next_phase(spec: ModelDeploymentSpec, after: Phase | None) -> Phase:
    """The first gate the spec configures after `after` (None: the rollout's first gate)."""
    start = 0 if after is None else GATES.index(after) + 1
    return next(gate for gate in GATES[start:] if enabled(spec, gate))


def gates_before_steps(spec: ModelDeploymentSpec) -> list[str]:
    """The labels of the configured gates a canary passes before its first live step."""
    return [GATE_LABELS[gate] for gate in GATES if gate in GATE_LABELS and enabled(spec, gate)]
