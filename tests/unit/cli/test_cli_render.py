"""The plugin's pure rendering: status view, tables, weight bar, ages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from sluice.api.v1alpha1 import ModelDeployment
from sluice.cli.history import render_history
from sluice.cli.live import render_live, route_text
from sluice.cli.render import (
    EventLine,
    PodLine,
    RouteParent,
    render_list,
    render_status,
    table,
    weight_bar,
)
from sluice.cli.times import age

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat()


def model(version: str) -> dict[str, Any]:
    return {"version": version, "uri": f"s3://models/fraud/{version}/model.onnx", "format": "onnx"}


def make_md(status: dict[str, Any], *, annotations: dict[str, str] | None = None, **spec: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {
                "name": "fraud",
                "namespace": "ml",
                "generation": 2,
                "uid": "u-1",
                "creationTimestamp": stamp(3600),
                "annotations": annotations or {},
            },
            "spec": {"model": model("2.0.0"), "replicas": 2, "rollout": {"steps": [10, 25, 50]}, **spec},
            "status": {"observedGeneration": 2, **status},
        }
    )


PROGRESSING = {
    "phase": "Progressing",
    "stableVersion": "1.0.0",
    "stableModel": model("1.0.0"),
    "canaryVersion": "2.0.0",
    "canaryRevision": {"number": 2, "hash": "0123456789", "version": "2.0.0", "changes": "model 1.0.0 → 2.0.0"},
    "canaryWeight": 25,
    "actualWeight": 33,
    "currentStep": 1,
    "readyReplicas": 2,
    "passedChecks": 1,
    "lastCheckTime": stamp(12),
    "lastCheck": {
        "time": stamp(12),
        "step": 1,
        "weight": 25,
        "verdict": "Passed",
        "metrics": [
            {"name": "requestCount", "value": 120, "min": 20, "verdict": "Passed", "message": "120 requests"},
            {"name": "errorRate", "value": 0.002, "max": 0.01, "verdict": "Passed", "message": "ok"},
            {"name": "latencyP99", "value": 0.0125, "max": 0.5, "verdict": "Passed", "message": "ok"},
            {"name": "accuracy", "value": 0.93, "min": 0.9, "verdict": "Passed", "message": "ok"},
        ],
    },
    "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": stamp(600), "reason": "StableAvailable",
         "message": "stable 1.0.0: 2/2 replicas ready"},
        {"type": "Progressing", "status": "True", "lastTransitionTime": stamp(30), "reason": "Analysing",
         "message": "canary 2.0.0 at step 2/3 (25%); next check at 2026-01-01T12:00:48+00:00"},
    ],
}  # fmt: skip


@pytest.mark.parametrize(
    ("weight", "bar"),
    [(0, "[....................] 0%"), (25, "[#####...............] 25%"), (100, "[####################] 100%")],
)
def test_weight_bar_shows_the_canary_share(weight: int, bar: str) -> None:
    assert weight_bar(weight) == bar


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (119, "119s"), (192, "3m12s"), (600, "10m"), (5 * 3600 + 600, "5h10m"), (30 * 3600, "30h"),
     (4 * 86400, "4d"), (-3, "0s")],
)  # fmt: skip
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert age(timedelta(seconds=seconds)) == text


def test_table_aligns_columns_and_does_not_pad_the_last() -> None:
    assert table(["A", "LONG"], [["xyz", "1"], ["b", "22"]]) == "A     LONG\nxyz   1\nb     22"


def test_status_shows_the_version_format_and_digest_a_registry_uri_resolved_to() -> None:
    registry_model = {"version": "2.0.0", "uri": "models:/fraud@champion"}
    digest = "sha256:" + "ab" * 32
    resolved = {"specHash": "0123", "version": "7", "format": "sklearn", "digest": digest, "resolvedAt": stamp(60)}

    before = render_status(make_md({}, model=registry_model), None, NOW)
    after = render_status(make_md({"resolvedModel": resolved}, model=registry_model), None, NOW)

    assert "Spec model:    2.0.0   models:/fraud@champion (format from the registry)" in before
    assert f"Spec model:    2.0.0   models:/fraud@champion (registered version 7, sklearn, {digest})" in after


def test_status_shows_versions_step_weight_metrics_against_bounds_conditions_and_events() -> None:
    events = [
        EventLine("Normal", "CheckPassed", "Passed at step 1/3 (10%)", NOW - timedelta(seconds=70)),
        EventLine("Normal", "StepAdvanced", "canary 2.0.0 at step 2/3 (25%)", NOW - timedelta(seconds=70), count=2),
    ]

    text = render_status(make_md(PROGRESSING), events, NOW, state="Progressing")

    assert text.splitlines()[:10] == [
        "Name:          fraud",
        "Namespace:     ml",
        "Phase:         Progressing   [Progressing]",
        "Message:       canary 2.0.0 at step 2/3 (25%); next check in 48s",
        "Spec model:    2.0.0   s3://models/fraud/2.0.0/model.onnx (onnx)",
        "Stable:        1.0.0   2/2 ready",
        "Canary:        2.0.0   revision 2: model 1.0.0 → 2.0.0",
        "Step:          2/3 at 25%   (steps 10%, 25%, 50%; interval 1m)",
        "Weight:        [#####...............] 25% (actual 33%)",
        "Checks:        1 passed, 0 failed, 0 inconclusive, 0 errored in a row",
    ]
    assert "Last check:    Passed at step 2/3 (25%), 12s ago" in text
    assert "  requestCount   120      20    -       Passed" in text
    assert "  errorRate      0.2%     -     1%      Passed" in text
    assert "  latencyP99     12.5ms   -     500ms   Passed" in text
    assert "  accuracy       0.93     0.9   -       Passed" in text
    assert "  Ready         True     StableAvailable   10m   stable 1.0.0: 2/2 replicas ready" in text
    assert "  70s   Normal   StepAdvanced   canary 2.0.0 at step 2/3 (25%) (x2)" in text


def test_status_shows_the_matched_requests_the_canary_gets_beside_its_weight() -> None:
    gateway = {"gateway": {"parentRefs": [{"name": "public"}]}}
    rollout = {"steps": [0, 25, 50], "match": [{"headers": [{"name": "x-tester", "value": "yes"}]}]}

    text = render_status(make_md(PROGRESSING, traffic=gateway, rollout=rollout), [], NOW, state="Progressing")

    assert "Weight:        [#####...............] 25% (actual 33%)   + the requests of 1 match" in text


def test_status_shows_a_relative_metric_with_its_interval_in_points() -> None:
    relative = {
        "name": "errorRateIncrease",
        "value": 0.004,
        "max": 0.01,
        "lower": -0.012,
        "upper": 0.02,
        "canaryRequests": 512,
        "stableRequests": 1530,
        "verdict": "Inconclusive",
        "message": "not yet",
    }
    check = {**cast(dict[str, Any], PROGRESSING["lastCheck"]), "metrics": [relative]}
    text = render_status(make_md({**PROGRESSING, "lastCheck": check}), [], NOW, state="Progressing")
    assert "  errorRateIncrease   +0.4 points (-1.2 points to +2 points)   -     +1 points   Inconclusive" in text


def test_status_names_a_pause_and_a_request_the_operator_has_not_handled() -> None:
    md = make_md(
        {**PROGRESSING, "phase": "Paused", "lastHandledActionId": "old"},
        annotations={"sluice.dev/paused": "true", "sluice.dev/action": "abort", "sluice.dev/action-id": "new"},
        paused=True,
    )

    text = render_status(md, [], NOW)

    assert "Paused:        yes, by spec.paused and annotation sluice.dev/paused" in text
    assert "Pending:       abort (id new) not handled by the operator yet" in text
    assert text.endswith("Events:\n  <none>")


def test_status_between_rollouts_shows_no_canary_and_the_last_rollout() -> None:
    md = make_md(
        {
            "phase": "Stable",
            "stableVersion": "2.0.0",
            "history": [
                {"version": "2.0.0", "outcome": "Promoted", "startedAt": stamp(900), "finishedAt": stamp(300),
                 "reason": "Promoted", "model": model("2.0.0"), "stableModel": model("1.0.0")},
            ],
        }
    )  # fmt: skip

    text = render_status(md, [], NOW)

    assert "Canary:" not in text
    assert "Weight:" not in text
    assert "Last rollout:  2.0.0 Promoted 5m ago: Promoted" in text


def test_list_table_with_and_without_namespaces() -> None:
    stable = make_md({"phase": "Stable", "stableVersion": "2.0.0", "readyReplicas": 2})

    assert render_list([make_md(PROGRESSING), stable], NOW, namespace="ml").splitlines() == [
        "NAME    PHASE         STABLE   CANARY   STEP   WEIGHT   ACTUAL   READY   AGE",
        "fraud   Progressing   1.0.0    2.0.0    2/3    25%      33%      2/2     60m",
        "fraud   Stable        2.0.0    -        -      -        -        2/2     60m",
    ]
    assert render_list([stable], NOW, namespace=None).splitlines()[1].startswith("ml          fraud   Stable")


def test_an_autoscaled_model_shows_its_ready_pods_against_the_hpas_bounds() -> None:
    md = make_md(
        {"phase": "Stable", "stableVersion": "2.0.0", "readyReplicas": 7},
        autoscaling={"minReplicas": 2, "maxReplicas": 10},
    )

    assert render_list([md], NOW, namespace="ml").splitlines()[1].split()[7] == "7/2..10"
    assert "7/2..10 ready" in render_status(md, [], NOW)


def test_an_empty_list_names_the_namespace_it_looked_in() -> None:
    assert render_list([], NOW, namespace="ml") == "No ModelDeployments found in namespace ml."
    assert render_list([], NOW, namespace=None) == "No ModelDeployments found in any namespace."


def test_wide_list_adds_spec_version_pause_last_check_and_message() -> None:
    lines = render_list([make_md(PROGRESSING)], NOW, namespace="ml", wide=True).splitlines()

    assert lines[0].endswith("AGE   SPEC    PAUSED   LAST CHECK       MESSAGE")
    assert lines[1].endswith(
        "60m   2.0.0   -        Passed 12s ago   canary 2.0.0 at step 2/3 (25%); next check in 48s"
    )


def test_events_that_rbac_forbids_are_not_shown_as_none() -> None:
    forbidden = render_status(make_md(PROGRESSING), None, NOW)
    empty = render_status(make_md(PROGRESSING), [], NOW)

    assert forbidden.endswith("Events:\n  <forbidden: you may not list events in namespace ml>")
    assert empty.endswith("Events:\n  <none>")


@pytest.mark.parametrize(
    ("status", "line"),
    [
        ({**PROGRESSING, "phase": "RolledBack", "canaryWeight": 0, "currentStep": None,
          "history": [{"version": "2.0.0", "outcome": "RolledBack", "startedAt": stamp(90), "finishedAt": stamp(5),
                       "reason": "AnalysisFailed"}]},
         "rolled back; stable 1.0.0 serves"),
        ({**PROGRESSING, "phase": "RolledBack", "canaryWeight": 0, "currentStep": None,
          "history": [{"version": "2.0.0", "outcome": "Aborted", "startedAt": stamp(90), "finishedAt": stamp(5),
                       "reason": "Aborted"}]},
         "aborted; stable 1.0.0 serves"),
        ({**PROGRESSING, "phase": "Validating", "canaryWeight": 0, "currentStep": None},
         "validation gate: scoring the canary on the labelled dataset before any traffic"),
        ({**PROGRESSING, "currentStep": None, "canaryWeight": 0},
         "starting the canary; step 1/3 follows once it is ready"),
    ],
)  # fmt: skip
def test_the_step_line_matches_the_phase_never_waiting_for_a_canary_that_is_gone(
    status: dict[str, Any], line: str
) -> None:
    text = render_status(make_md(status), [], NOW)

    assert f"Step:          {line}   (steps 10%, 25%, 50%; interval 1m)" in text
    assert "waiting for the canary" not in text


def test_the_validation_gate_shows_score_samples_and_bound() -> None:
    status = {**PROGRESSING, "phase": "Validating", "currentStep": None, "canaryWeight": 0,
              "validation": {"version": "2.0.0", "time": stamp(3), "metric": "accuracy", "score": 0.8125,
                             "samples": 200, "passed": False, "message": "accuracy 0.8125 below min 0.9"}}  # fmt: skip
    md = make_md(status, validation={"uri": "https://data.example.com/holdout.csv", "min": 0.9})

    assert "Validation:    accuracy 0.8125 on 200 samples, needs accuracy >= 0.9: FAILED" in render_status(md, [], NOW)


def live(md: ModelDeployment, events: list[EventLine] | None, pods: list[PodLine] | None) -> list[str]:
    return render_live(md, events, pods, NOW, state="Progressing", footer="Ctrl-C quits").splitlines()


PODS = [
    PodLine("fraud-canary-7d9f-abc12", "canary", "Running", True, NOW - timedelta(seconds=95)),
    PodLine("fraud-canary-7d9f-def34", "canary", "ContainerCreating", False, NOW - timedelta(seconds=20)),
    PodLine("fraud-stable-5c8b-aaa11", "stable", "Running", True, NOW - timedelta(hours=2)),
    PodLine("fraud-stable-5c8b-bbb22", "stable", "Running", True, NOW - timedelta(hours=2)),
]


def test_live_view_fits_80_by_24_with_counts_pods_marks_and_relative_times() -> None:
    events = [EventLine("Warning", "CheckFailed", "x" * 300, NOW - timedelta(seconds=s)) for s in range(40, 0, -1)]

    lines = live(make_md(PROGRESSING), events, PODS)

    assert len(lines) <= 23
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("fraud · ml · Progressing (Progressing)")
    assert lines[0].endswith("Ctrl-C quits")
    assert lines[1] == "model   2.0.0 (spec)   stable 1.0.0 2/2 ready   canary 2.0.0 1/2 ready"
    assert lines[2].startswith("traffic [#####...............] 25% (actual 33%)   2/3 at 25%")
    assert lines[3] == "steps   ✔ 10%  ▸ 25%  · 50%   every 1m"
    assert lines[4] == "check   ✔ Passed 12s ago at step 2 (25%)   1 passed, 0 failed"
    assert "  ✔ errorRate            0.2%   ≤ 1%" in lines
    assert "  ✔ latencyP99         12.5ms   ≤ 500ms" in lines
    assert "pods    ✔ fraud-canary-7d9f-abc12  canary  Running  95s" in lines
    assert "        ✖ fraud-canary-7d9f-def34  canary  ContainerCreating  20s" in lines
    assert "message canary 2.0.0 at step 2/3 (25%); next check in 48s" in lines
    assert lines[-1].endswith("…")
    assert lines[-1].startswith("     1s ! CheckFailed: xxx")
    assert sum("next check" in line for line in lines) == 1, "the message is shown once"


def test_the_views_show_the_share_the_operator_observed_beside_the_requested_weight() -> None:
    md = make_md({**PROGRESSING, "actualWeight": 50})
    assert "[#####...............] 25% (actual 50%)" in live(md, [], [PODS[0], PODS[2]])[2]
    assert "Weight:        [#####...............] 25% (actual 50%)" in render_status(md, [], NOW)
    assert "(actual unknown)" in render_status(make_md({**PROGRESSING, "actualWeight": None}, traffic=GATEWAY), [], NOW)
    assert "(actual" not in render_status(make_md({**PROGRESSING, "actualWeight": 25}), [], NOW)
    header, row = render_list([md], NOW, namespace="ml").splitlines()
    assert row.split()[header.split().index("ACTUAL")] == "50%"


GATEWAY = {"gateway": {"parentRefs": [{"name": "public"}]}}


def test_a_route_no_gateway_accepted_is_shown_as_moving_no_traffic() -> None:
    md = make_md(PROGRESSING, traffic=GATEWAY)

    assert route_text(md, []) == (
        "✖ HTTPRoute fraud not accepted by public (no status from any parent: is there such a Gateway?): "
        "its weights move no traffic"
    )
    assert route_text(md, [RouteParent("public", "False", "NotAllowedByListeners")]) == (
        "✖ HTTPRoute fraud not accepted by public (public: NotAllowedByListeners): its weights move no traffic"
    )
    assert route_text(md, [RouteParent("public", "True", "Accepted")]) == "✔ HTTPRoute fraud accepted by public"
    assert route_text(md, None) == "<forbidden: you may not get httproutes in namespace ml>"
    assert route_text(md, [], found=False) == "HTTPRoute fraud not created yet"
    assert "route   ✖ HTTPRoute fraud not accepted" in "\n".join(
        render_live(md, [], PODS, NOW, state="Progressing", route=route_text(md, [])).splitlines()
    )
    assert "Route:         ✖ HTTPRoute fraud not accepted" in render_status(md, [], NOW, route=route_text(md, []))


def test_live_view_marks_the_failed_step_after_a_rollback_and_says_what_is_forbidden() -> None:
    status = {**PROGRESSING, "phase": "RolledBack", "canaryWeight": 0, "currentStep": None,
              "lastCheck": {**cast(dict[str, Any], PROGRESSING["lastCheck"]), "verdict": "Failed"}}  # fmt: skip

    lines = live(make_md(status), None, None)

    assert "steps   ✔ 10%  ✖ 25%  · 50%   every 1m" in lines
    assert "pods    <forbidden: you may not list pods in namespace ml>" in lines
    assert "events  <forbidden: you may not list events in namespace ml>" in lines


def test_history_numbers_entries_oldest_first_with_revision_outcome_duration_changes_and_model() -> None:
    md = make_md(
        {
            "phase": "Stable",
            "stableVersion": "2.0.0",
            "history": [
                {"version": "1.5.0", "outcome": "RolledBack", "startedAt": stamp(4000), "finishedAt": stamp(3880),
                 "reason": "AnalysisFailed", "message": "error rate 0.31 above maxErrorRate 0.01"},
                {"version": "2.0.0", "outcome": "Promoted", "startedAt": stamp(900), "finishedAt": stamp(300),
                 "reason": "Promoted", "model": model("2.0.0"),
                 "revision": {"number": 3, "hash": "0123456789", "version": "2.0.0", "changes": "env FOO changed"}},
            ],
            "stableRevision": {"number": 3, "hash": "0123456789", "version": "2.0.0"},
        }
    )  # fmt: skip

    lines = render_history(md, NOW).splitlines()

    assert lines[0].split() == [
        "#", "REVISION", "VERSION", "OUTCOME", "FINISHED", "TOOK", "REASON", "CHANGES", "MODEL", "MESSAGE"
    ]  # fmt: skip
    assert lines[1].split()[:8] == ["1", "-", "1.5.0", "RolledBack", "64m", "ago", "2m", "AnalysisFailed"]
    assert "s3://models/fraud/2.0.0/model.onnx (onnx)" in lines[2]
    assert lines[2].split()[:3] == ["2", "3", "2.0.0"]
    assert "env FOO changed" in lines[2]
    assert lines[-1] == "stable now: 2.0.0 (revision 3)"
    assert "No finished rollouts of fraud yet" in render_history(make_md({"phase": "Stable"}), NOW)


def test_status_shows_an_experiments_split_samples_per_arm_and_decision_so_far() -> None:
    experiment = {
        "duration": "1h",
        "minSamples": 5000,
        "split": 30,
        "stickyBy": {"header": "x-user-id"},
        "metrics": [{"name": "errors", "query": "q"}],
    }
    status = {
        **PROGRESSING,
        "phase": "Experimenting",
        "canaryWeight": 0,
        "currentStep": None,
        "experiment": {
            "id": "0123456789abcdef",
            "split": 30,
            "startedAt": stamp(600),
            "samplesA": 2100,
            "samplesB": 900,
            "decision": "Running",
            "metrics": [
                {"name": "errors", "shareA": 0.02, "shareB": 0.01, "lower": -0.02, "upper": 0.001,
                 "comparison": "Undecided"}
            ],
        },
    }  # fmt: skip
    text = render_status(make_md(status, traffic={"gateway": {"parentRefs": [{"name": "gw"}]}}, experiment=experiment),
                         [], NOW)  # fmt: skip
    assert "A 70% / B 30% of entity keys (header x-user-id); decision Running" in text
    assert "A 2100, B 900; started 10m ago; ends at duration 1h or 5000 per arm" in text
    assert "errors: A 0.02, B 0.01 (B - A in [-0.02, 0.001]): Undecided" in text
    assert "experimenting: 2.0.0 (B) beside 1.0.0 (A)" in text
