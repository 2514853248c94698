"""Semantic checks the CRD schema cannot express, and the operator's allowlists of what a spec may point it at;
a spec failing one is reported as InvalidSpec (pure)."""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sluice.api.v1alpha1 import ModelDeploymentSpec, ModelDeploymentStatus
from sluice.core.children import ChildNames, parse_pvc_uri
from sluice.core.conditions import READY, ConditionStatus, kstatus_conditions, set_condition
from sluice.core.registry import parse_registry_uri
from sluice.core.workloads import RESERVED_ENV, parse_quantity

INVALID_SPEC = "InvalidSpec"
QUERY_PLACEHOLDERS = frozenset({"namespace", "name", "version", "track", "interval"})
EXPERIMENT_PLACEHOLDERS = frozenset({"namespace", "name", "arm", "version", "track", "window"})
KEEP_PREVIOUS_WITH_AUTOSCALING = (
    "spec.rollout.keepPrevious cannot be combined with spec.autoscaling yet: while the previous revision is kept, "
    "both tracks run spec.replicas, not the count the HPA reached"
)
_PLACEHOLDER = re.compile(r"\{\{\s*([^}]*?)\s*\}\}")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MAX_SERVICE_NAME = 63


@dataclass(frozen=True)
class Allowlists:
    """What the operator's administrator lets ModelDeployment authors point the operator at (operator settings;
    docs/security.md): URLs the operator calls and files it reads come from here, never from a spec alone."""

    prometheus_urls: frozenset[str] = frozenset()
    """Prometheus base URLs a spec's analysis.prometheus.url may name (the operator's default among them)."""
    dataset_hosts: frozenset[str] = frozenset()
    """Hosts (`host` or `host:port`, lowercase) an http(s) validation dataset may come from; empty: none."""
    dataset_dir: str = ""
    """The directory file:// validation datasets must lie under; empty: no file:// datasets."""
    gateways: frozenset[str] = frozenset()
    """Gateways (`namespace/name`) an HTTPRoute may attach to; empty: any Gateway."""
    hostname_suffixes: tuple[str, ...] = ()
    """Domains the HTTPRoute's hostnames must lie in (then hostnames are required); empty: any hostname."""


def normal_url(url: str) -> str:
    """A base URL as compared with an allowlist: without trailing slashes."""
    return url.rstrip("/")


def dataset_file_allowed(path: str, dataset_dir: str) -> bool:
    """Whether an absolute `path` (normalized here, so `..` cannot climb out) lies under `dataset_dir`."""
    if not dataset_dir or not path.startswith("/"):
        return False
    root = posixpath.normpath(dataset_dir)
    return posixpath.normpath(path).startswith(root.rstrip("/") + "/")


def dataset_uri_problem(uri: str, allow: Allowlists) -> str | None:
    """Why the operator may not read the validation dataset at `uri`, None when it may (the adapter checks the
    resolved file and the HTTP client's view of the host again before reading)."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "file":
        if not allow.dataset_dir:
            return "spec.validation.uri: the operator reads no file:// datasets (use configMapRef)"
        if parsed.netloc or not dataset_file_allowed(urllib.parse.unquote(parsed.path), allow.dataset_dir):
            where = allow.dataset_dir
            return f"spec.validation.uri: a file:// dataset must lie under the operator's dataset directory {where}"
        return None
    try:
        host, port = (parsed.hostname or "").lower(), parsed.port
    except ValueError:
        return "spec.validation.uri: the port is not a number"
    if parsed.username is not None or parsed.password is not None or "\\" in uri:
        return "spec.validation.uri: credentials and backslashes are not allowed in a dataset URL"
    if host in allow.dataset_hosts or (port is not None and f"{host}:{port}" in allow.dataset_hosts):
        return None
    allowed = ", ".join(sorted(allow.dataset_hosts)) or "none: use configMapRef"
    return f"spec.validation.uri: host {host!r} is not one of the operator's dataset hosts ({allowed})"


def in_domain(hostname: str, suffix: str) -> bool:
    """Whether `hostname` (`*.` wildcards included) names only hosts in the domain `suffix`."""
    base, domain = hostname.lower().removeprefix("*."), suffix.lower().strip(".")
    return base == domain or base.endswith("." + domain)


def allowlist_problems(namespace: str, spec: ModelDeploymentSpec, allow: Allowlists) -> list[str]:
    """Where a spec in `namespace` points the operator outside its allowlists, one sentence each."""
    found: list[str] = []
    if spec.analysis.prometheus is not None:
        allowed = {normal_url(url) for url in allow.prometheus_urls}
        if normal_url(spec.analysis.prometheus.url) not in allowed:
            found.append(
                "spec.analysis.prometheus.url is not one of the operator's Prometheus URLs "
                f"({', '.join(sorted(allowed))}); leave it out to use the default"
            )
    if spec.validation is not None and spec.validation.uri is not None:
        problem = dataset_uri_problem(spec.validation.uri, allow)
        if problem is not None:
            found.append(problem)
    gateway = spec.traffic.gateway if spec.traffic else None
    if gateway is None:
        return found
    if allow.gateways:
        for parent in gateway.parent_refs:
            ref = f"{parent.namespace or namespace}/{parent.name}"
            if ref not in allow.gateways:
                found.append(
                    f"spec.traffic.gateway.parentRefs: Gateway {ref} is not one of the operator's Gateways "
                    f"({', '.join(sorted(allow.gateways))})"
                )
    if allow.hostname_suffixes:
        domains = ", ".join(allow.hostname_suffixes)
        if not gateway.hostnames:
            found.append(f"spec.traffic.gateway.hostnames is required: hostnames must lie in {domains}")
        for hostname in gateway.hostnames or []:
            if not any(in_domain(hostname, suffix) for suffix in allow.hostname_suffixes):
                found.append(f"spec.traffic.gateway.hostnames: {hostname!r} does not lie in {domains}")
    return found


def problems(name: str, spec: ModelDeploymentSpec, default_image: str) -> list[str]:
    """What is wrong with a spec the API server admitted, one sentence each; empty when it can be served."""
    found: list[str] = []
    longest_child = max(len(child) for child in vars(ChildNames.of(name)).values())
    if not _DNS_LABEL.match(name) or longest_child > _MAX_SERVICE_NAME:
        found.append(
            f"metadata.name {name!r} must be a DNS label (lowercase letters, digits, '-', starting with a letter) "
            f"short enough for its Service {ChildNames.of(name).canary_service!r} (at most {_MAX_SERVICE_NAME})"
        )
    if spec.model.uri.startswith("pvc://") and parse_pvc_uri(spec.model.uri) is None:
        found.append(f"spec.model.uri {spec.model.uri!r} needs a claim and a path: pvc://<claim>/<path>")
    if spec.model.format is None and parse_registry_uri(spec.model.uri) is None:
        found.append("spec.model.format is required unless spec.model.uri is a models:/ uri")
    serving = spec.serving
    if not ((serving.image if serving else None) or default_image):
        found.append("spec.serving.image is not set and the operator has no default serving image")
    for env in (serving.env or []) if serving else []:
        if env.name in RESERVED_ENV:
            found.append(f"spec.serving.env may not set {env.name}: the operator sets it")
    found += _resource_problems(spec)
    routed = spec.traffic is not None and spec.traffic.gateway is not None
    for gate, present in (("spec.validation", spec.validation), ("spec.rollout.shadow", spec.rollout.shadow)):
        if present is not None and not routed:
            found.append(f"{gate} needs spec.traffic.gateway: only an HTTPRoute keeps a running canary at weight 0")
    if spec.rollout.keep_previous is not None and not routed:
        found.append(
            "spec.rollout.keepPrevious needs spec.traffic.gateway: only an HTTPRoute keeps Ready pods at weight 0"
        )
    if spec.rollout.keep_previous is not None and spec.autoscaling is not None:
        found.append(KEEP_PREVIOUS_WITH_AUTOSCALING)
    if spec.rollout.match and not routed:
        found.append("spec.rollout.match needs spec.traffic.gateway: only an HTTPRoute can route requests by header")
    if spec.rollout.steps[0] == 0 and not spec.rollout.match:
        found.append("spec.rollout.steps: a first step of 0 (matched requests only) needs spec.rollout.match")
    for metric in spec.analysis.metrics or []:
        unknown = sorted(set(_PLACEHOLDER.findall(metric.query)) - QUERY_PLACEHOLDERS)
        if unknown:
            known = ", ".join("{{" + p + "}}" for p in sorted(QUERY_PLACEHOLDERS))
            found.append(
                f"spec.analysis.metrics[{metric.name}].query uses unknown placeholders "
                f"{', '.join('{{' + u + '}}' for u in unknown)} (known: {known})"
            )
    return found + _experiment_problems(spec, routed)


def _experiment_problems(spec: ModelDeploymentSpec, routed: bool) -> list[str]:
    """spec.experiment's rules (admission enforces them too; an object stored before them meets them here)."""
    experiment = spec.experiment
    if experiment is None:
        return []
    found = []
    if not routed:
        found.append("spec.experiment needs spec.traffic.gateway: the route sends all requests to the stable Service")
    if spec.rollout.match or spec.rollout.shadow is not None or spec.rollout.keep_previous is not None:
        found.append("spec.experiment cannot be combined with rollout.match, rollout.shadow or rollout.keepPrevious")
    names = [metric.name for metric in experiment.metrics]
    if len(set(names)) != len(names):
        found.append("spec.experiment.metrics: each metric needs a name of its own")
    for metric in experiment.metrics:
        unknown = sorted(set(_PLACEHOLDER.findall(metric.query)) - EXPERIMENT_PLACEHOLDERS)
        if unknown:
            known = ", ".join("{{" + p + "}}" for p in sorted(EXPERIMENT_PLACEHOLDERS))
            found.append(f"spec.experiment.metrics[{metric.name}].query uses unknown placeholders (known: {known})")
    return found


def _resource_problems(spec: ModelDeploymentSpec) -> list[str]:
    resources = spec.serving.resources if spec.serving else None
    if resources is None:
        return []
    found = []
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for kind, values in (("requests", resources.requests), ("limits", resources.limits)):
        for key, value in (values or {}).items():
            try:
                parsed[kind][key] = parse_quantity(value)
            except ValueError as error:
                found.append(f"spec.serving.resources.{kind}.{key}: {error}")
    requests, limits = parsed["requests"], parsed["limits"]
    for key in sorted(requests.keys() & limits.keys()):
        if requests[key] > limits[key]:
            found.append(f"spec.serving.resources: the {key} request exceeds its limit")
    return found


def invalid_spec_status(
    status: ModelDeploymentStatus, message: str, generation: int, now: datetime
) -> ModelDeploymentStatus:
    """The status with Ready=False, reason InvalidSpec; everything else (the rollout's memory) as it was."""
    conditions = set_condition(
        status.conditions,
        READY,
        ConditionStatus.FALSE,
        reason=INVALID_SPEC,
        message=message,
        now=now,
        observed_generation=generation,
    )
    conditions = kstatus_conditions(
        conditions, rolling_out=False, rolled_back=False, now=now, observed_generation=generation
    )
    return status.model_copy(update={"conditions": conditions, "observed_generation": generation})
