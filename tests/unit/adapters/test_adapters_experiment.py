"""An experiment's PromQL: each arm's samples from the exposure counts, the metrics' templates filled in per arm;
and a Prometheus that cannot answer is the reading's error, never an exception."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sluice.adapters.experiment import ExperimentMetrics, ExperimentQuery, render, samples_query

QUERY = ExperimentQuery("ml", 'fr"aud', "1.0.0", "2.0.0", timedelta(seconds=95.4), {"errors": "q"})


def test_each_arms_samples_are_its_exposures_since_the_experiment_started() -> None:
    a, b = QUERY.arms()
    selector = 'namespace="ml",model="fr\\"aud",arm="B"'
    assert samples_query(b) == f"sum(last_over_time(sluice_serving_experiment_exposures_total{{{selector}}}[1m35s]))"
    assert 'arm="A"' in samples_query(a)


def test_a_metrics_template_is_filled_in_with_the_arms_version_and_track() -> None:
    a, b = QUERY.arms()
    template = "hits{v='{{version}}',t='{{ track }}',a='{{arm}}'}[{{window}}] {{namespace}}/{{name}}"
    assert render(template, a) == "hits{v='1.0.0',t='stable',a='A'}[1m35s] ml/fr\"aud"
    assert render(template, b) == "hits{v='2.0.0',t='canary',a='B'}[1m35s] ml/fr\"aud"


def test_a_prometheus_that_cannot_answer_is_the_readings_error() -> None:
    reading = asyncio.run(ExperimentMetrics("http://127.0.0.1:9", 1.0).read(QUERY))
    assert reading.error is not None
    assert reading.samples_a is None
