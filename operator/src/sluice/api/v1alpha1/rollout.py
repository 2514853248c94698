"""spec.rollout: the steps, their timing, and the shadow phase."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field

from sluice.api.v1alpha1.matching import MAX_MATCHES, RouteMatch
from sluice.api.v1alpha1.meta import MAX_INTERVAL, MAX_STEPS, MIN_INTERVAL, ApiModel, Duration, cel, is_duration


class Capacity(StrEnum):
    """How a canary gets its pods: beside stable's (Surge) or taken from them (Neutral)."""

    SURGE = "Surge"
    NEUTRAL = "Neutral"


class ShadowSpec(ApiModel):
    """A shadow (mirror) phase before any live weight: the canary gets copies of requests, its answers are
    discarded, and it is compared with stable on the same inputs (docs/ml-analysis.md, Shadow traffic)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.minAgreement) || has(self.maxMeanAbsDifference)",
                    "shadow needs minAgreement (classifiers), maxMeanAbsDifference (regressors) or both",
                )
            ]
        }
    )

    percent: int = Field(
        default=100, ge=1, le=100, description="Percentage of requests mirrored to the canary (1..100).", examples=[50]
    )
    checks: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Passed shadow checks (one per rollout.interval) before the first live step.",
    )
    min_comparisons: int = Field(
        default=20,
        ge=1,
        le=1_000_000,
        description="Fewer compared requests per check is inconclusive, never a pass.",
    )
    min_agreement: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Lowest fraction of mirrored requests on which canary and stable predict the same class.",
        examples=[0.95],
    )
    max_mean_abs_difference: float | None = Field(
        default=None,
        ge=0,
        description="Highest mean absolute difference between canary and stable predictions (regressors).",
        examples=[0.5],
    )


class RolloutSpec(ApiModel):
    """How a new version is shifted in."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    f"!{is_duration('interval')} || (duration(self.interval) >= duration('{MIN_INTERVAL}') "
                    f"&& duration(self.interval) <= duration('{MAX_INTERVAL}'))",
                    f"interval must be between {MIN_INTERVAL} and {MAX_INTERVAL}",
                    ".interval",
                ),
                cel(
                    f"!has(self.keepPrevious) || !{is_duration('keepPrevious')} "
                    f"|| (duration(self.keepPrevious) >= duration('{MIN_INTERVAL}') "
                    f"&& duration(self.keepPrevious) <= duration('{MAX_INTERVAL}'))",
                    f"keepPrevious must be between {MIN_INTERVAL} and {MAX_INTERVAL}",
                    ".keepPrevious",
                ),
                cel(
                    "!has(self.postPromotionAnalysis) || !self.postPromotionAnalysis || has(self.keepPrevious)",
                    "postPromotionAnalysis needs keepPrevious: it runs while the previous revision's pods are kept",
                    ".postPromotionAnalysis",
                ),
                cel(
                    f"!{is_duration('interval')} || !{is_duration('progressDeadline')} "
                    "|| duration(self.progressDeadline) >= duration(self.interval)",
                    "progressDeadline must be at least as long as interval",
                    ".progressDeadline",
                ),
                cel(
                    "self.steps[0] > 0 || has(self.match)",
                    "a first step of 0 (matched requests only) needs rollout.match",
                    ".steps",
                ),
            ]
        }
    )

    steps: list[Annotated[int, Field(ge=0, le=100)]] = Field(
        default_factory=lambda: [10, 25, 50],
        min_length=1,
        max_length=MAX_STEPS,
        description="Canary traffic percentages, strictly increasing, each 1..100; at most 20 steps. With "
        "rollout.match the first may be 0: a step in which the canary serves the matched requests alone.",
        examples=[[10, 25, 50], [5, 20, 50, 100]],
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "x-kubernetes-validations": [
                cel("self.isSorted()", "steps must be strictly increasing (for example [10, 25, 50])")
            ],
        },
    )
    interval: Duration = Field(
        default="1m", description="Time per step, and per analysis check (1s..24h).", examples=["30s", "5m"]
    )
    progress_deadline: Duration = Field(
        default="10m",
        description="How long a canary may take to become Ready before it is rolled back; at least interval.",
        examples=["15m"],
    )
    shadow: ShadowSpec | None = Field(
        default=None,
        description="Mirror requests to the canary and compare it with stable before any live weight; needs "
        "traffic.gateway and Gateways whose GatewayClass lists HTTPRouteRequestMirror in status.supportedFeatures "
        "(Traefik's does not): until then the rollout holds at weight 0 without a mirror (Progressing=False, "
        "GatewayLacksRequestMirror). Off when left out.",
    )
    capacity: Capacity | None = Field(
        default=None,
        description="Surge (when left out): the canary runs beside a full stable track (spec.replicas with "
        "traffic.gateway, the weight's share without). Neutral: the canary's pods are taken from stable, one at a "
        "time, each stable pod leaving only once a canary pod is Ready (never fewer than spec.replicas Ready, at "
        "most one more); on rollback or promotion the stable track is back at spec.replicas before the canary "
        "pods go. For GPU models that cannot double their capacity.",
    )
    keep_previous: Duration | None = Field(
        default=None,
        description="After a promotion, keep the previous revision's pods Ready, taking no traffic, for this long "
        "(1s..24h): `kubectl sluice undo` within it moves all traffic back to them in one route write. Needs "
        "traffic.gateway. The promoted revision serves from the canary's pods meanwhile, and moves to the stable "
        "Deployment when the window ends. Both tracks run spec.replicas during the window, with capacity Neutral "
        "too. Off when left out.",
        examples=["10m"],
    )
    post_promotion_analysis: bool = Field(
        default=False,
        description="While keepPrevious holds the previous revision, go on checking the promoted revision with "
        "spec.analysis every interval; at a limit (maxFailedChecks, ...) traffic goes back to the previous "
        "revision at once (outcome RolledBackAfterPromotion). Needs keepPrevious.",
    )
    match: list[RouteMatch] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MATCHES,
        description="Requests (by header, cookie or query parameter) the HTTPRoute sends to the canary alone, from "
        "the first live step until promotion or rollback, beside the weighted share; needs traffic.gateway. Any "
        "one match suffices. Matched requests count in the canary's analysis and add to its share of traffic.",
    )
