"""`Reconciler.reconcile` with spec.experiment on the in-memory cluster: the stable Deployment assigns the arms
(its annotation, the candidate's URL from the operator's template), and a due check reads the experiment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sluice.adapters.experiment import ExperimentQuery, ExperimentReader
from sluice.api.v1alpha1 import ExperimentDecision, Phase
from sluice.core.plan import ExperimentReading
from sluice.core.workloads import EXPERIMENT_ANNOTATION
from unit.operator.test_reconciler import GATEWAY, NAME, NAMES, NAMESPACE, Harness, spec, stable

EXPERIMENT = {"duration": "1h", "stickyBy": {"header": "x-user"}, "metrics": [{"name": "errors", "query": "q"}]}


@dataclass
class Experiments:
    """An ExperimentReader answering with `reading`, recording the queries."""

    reading: ExperimentReading = field(
        default_factory=lambda: ExperimentReading(samples_a=40, samples_b=38, hits={"errors": (2, 0)})
    )
    queries: list[ExperimentQuery] = field(default_factory=list)

    async def read(self, query: ExperimentQuery) -> ExperimentReading:
        self.queries.append(query)
        return self.reading


def reconcile(harness: Harness, experiments: Experiments) -> None:
    def provider(url: str) -> ExperimentReader:
        return experiments

    asyncio.run(replace(harness.reconciler(), experiment_provider=provider).reconcile(NAMESPACE, NAME))


def stable_deployment(harness: Harness) -> dict[str, Any]:
    found = harness.cluster.get("Deployment", NAMESPACE, NAMES.stable_deployment)
    assert found is not None
    return found


def test_the_stable_deployment_assigns_the_arms_and_a_due_check_reads_the_experiment() -> None:
    harness, experiments = stable(Harness(), spec(traffic=GATEWAY)), Experiments()
    harness.set_spec(spec("2.0.0", traffic=GATEWAY, experiment=EXPERIMENT))
    reconcile(harness, experiments)
    assert harness.status_phase() is Phase.EXPERIMENTING
    deployment = stable_deployment(harness)
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SLUICE_EXPERIMENT_CANDIDATE_URL"] == f"http://{NAMES.canary_service}.{NAMESPACE}.svc:80"
    assert env["SLUICE_EXPERIMENT_ID"] == deployment["metadata"]["annotations"][EXPERIMENT_ANNOTATION]

    harness.cluster.make_available(NAMESPACE, NAMES.canary_deployment)
    harness.cluster.make_available(NAMESPACE, NAMES.stable_deployment)
    reconcile(harness, experiments)
    assert harness.event_reasons()[-1] == "ExperimentStarted"
    harness.now += timedelta(minutes=1)
    reconcile(harness, experiments)

    assert [(q.stable_version, q.candidate_version, q.window) for q in experiments.queries] == [
        ("1.0.0", "2.0.0", timedelta(minutes=1))
    ]
    experiment = harness.cluster.status(NAMESPACE, NAME).experiment
    assert experiment is not None
    assert (experiment.samples_a, experiment.samples_b, experiment.decision) == (40, 38, ExperimentDecision.RUNNING)
