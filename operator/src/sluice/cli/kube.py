"""The plugin's Kubernetes access: the standard kubeconfig flags, ModelDeployment reads and patches, Events.

The connection follows kubectl: `--kubeconfig` (else KUBECONFIG, which may list several files, else
~/.kube/config), `--context` (else the current context), `-n/--namespace` (else the context's namespace, else
`default`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from urllib3.exceptions import HTTPError

from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION, ModelDeployment
from sluice.cli.base import CliError, ExitCode, duration_seconds
from sluice.cli.render import EventLine, PodLine, RouteParent
from sluice.core.children import GATEWAY_API_VERSION, TRACK_LABEL

CONFLICT_RETRIES = 3


def add_connection_arguments(parser: argparse.ArgumentParser, *, suppress_defaults: bool) -> None:
    """--kubeconfig, --context, -n/--namespace. Subcommands get them with suppressed defaults, so the values given
    before the subcommand (`kubectl sluice -n ml status fraud`) are not overwritten by the subcommand's defaults."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress_defaults else value

    group = parser.add_argument_group("connection (as kubectl)")
    group.add_argument(
        "--kubeconfig", default=default(None), metavar="PATH", help="kubeconfig file (default: $KUBECONFIG)"
    )
    group.add_argument("--context", default=default(None), help="kubeconfig context (default: the current one)")
    group.add_argument(
        "-n",
        "--namespace",
        default=default(None),
        help="namespace (default: the context's namespace, else default)",
    )
    group.add_argument(
        "--request-timeout",
        type=duration_seconds,
        default=default(30.0),
        metavar="DURATION",
        help="how long one API request may take (default 30s)",
    )


def parse_model_deployment(body: Mapping[str, Any]) -> ModelDeployment:
    try:
        return ModelDeployment.model_validate(body)
    except ValidationError as error:
        name = body.get("metadata", {}).get("name", "?")
        raise CliError(ExitCode.FAILED, f"modeldeployment {name!r} does not parse: {error}") from error


def api_error(error: ApiException, what: str) -> CliError:
    """A CliError naming the API server's own message."""
    message = error.reason
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(error.body or "{}").get("message") or message
    return CliError(ExitCode.API_ERROR, f"{what}: {error.status} {message}")


@dataclass
class Kube:
    """A connected client, scoped to one namespace."""

    api_client: client.ApiClient
    namespace: str
    request_timeout: float = 30.0

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Kube:
        kubeconfig: str | None = getattr(args, "kubeconfig", None)
        context: str | None = getattr(args, "context", None)
        try:
            api_client = config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
            contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError) as error:
            raise CliError(ExitCode.USAGE, f"cannot load the kubeconfig: {error}") from error
        namespace: str | None = getattr(args, "namespace", None)
        if not namespace:
            chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
            namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
        return cls(api_client, namespace, float(getattr(args, "request_timeout", 30.0)))

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ApiException:
            raise
        except HTTPError as error:
            host = self.api_client.configuration.host
            raise CliError(ExitCode.API_ERROR, f"{what}: cannot reach the API server at {host}: {error}") from error

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api_client)

    def get_body(self, name: str) -> dict[str, Any]:
        """The ModelDeployment as stored; CliError(USAGE) when there is none."""
        try:
            body = self._call(
                "get",
                lambda: self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, _request_timeout=self.request_timeout
                ),
            )
        except ApiException as error:
            if error.status == 404:
                raise CliError(
                    ExitCode.USAGE,
                    f'modeldeployment "{name}" not found in namespace "{self.namespace}"'
                    + ("" if "modeldeployments" in str(error.body) else " (is the sluice CRD installed?)"),
                ) from error
            raise api_error(error, f'get modeldeployment "{name}"') from error
        return cast(dict[str, Any], body)

    def get(self, name: str) -> ModelDeployment:
        return parse_model_deployment(self.get_body(name))

    def list_bodies(self, *, all_namespaces: bool) -> list[dict[str, Any]]:
        """The ModelDeployments as stored, in the namespace or in all of them."""
        try:
            if all_namespaces:
                listed = self._call(
                    "list",
                    lambda: self.custom.list_cluster_custom_object(
                        GROUP, VERSION, PLURAL, _request_timeout=self.request_timeout
                    ),
                )
            else:
                listed = self._call(
                    "list",
                    lambda: self.custom.list_namespaced_custom_object(
                        GROUP, VERSION, self.namespace, PLURAL, _request_timeout=self.request_timeout
                    ),
                )
        except ApiException as error:
            if error.status == 404:
                raise CliError(
                    ExitCode.API_ERROR, "the server has no ModelDeployment resource: is the sluice CRD installed?"
                ) from error
            raise api_error(error, "list modeldeployments") from error
        return cast(list[dict[str, Any]], listed.get("items", []))

    def patch(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch; raises ApiException 409 when it carries a stale metadata.resourceVersion."""
        try:
            body = self._call(
                "patch",
                lambda: self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, name, dict(patch), _request_timeout=self.request_timeout
                ),
            )
        except ApiException as error:
            if error.status == 409:
                raise
            if error.status == 404:
                raise CliError(
                    ExitCode.USAGE, f'modeldeployment "{name}" not found in namespace "{self.namespace}"'
                ) from error
            raise api_error(error, f'patch modeldeployment "{name}"') from error
        return cast(dict[str, Any], body)

    def patch_checked(
        self, name: str, make_patch: Callable[[ModelDeployment], dict[str, Any]]
    ) -> tuple[ModelDeployment, ModelDeployment]:
        """Read, build the patch from what was read (its checks may raise CliError), write it guarded by the
        resourceVersion read; on a conflict, read and check again. Returns (before, after)."""
        for _ in range(CONFLICT_RETRIES):
            body = self.get_body(name)
            before = parse_model_deployment(body)
            patch = make_patch(before)
            patch.setdefault("metadata", {})["resourceVersion"] = body["metadata"]["resourceVersion"]
            try:
                return before, parse_model_deployment(self.patch(name, patch))
            except ApiException as error:
                if error.status != 409:
                    raise api_error(error, f'patch modeldeployment "{name}"') from error
        raise CliError(ExitCode.API_ERROR, f'modeldeployment "{name}" kept changing while it was patched; try again')

    def events(self, uid: str, limit: int) -> list[EventLine] | None:
        """The newest `limit` Events about the object with this uid, oldest first; None when RBAC forbids reading
        them (the status is still shown; the view says `<forbidden>`, not `<none>`)."""
        core = client.CoreV1Api(self.api_client)
        try:
            listed = self._call(
                "events",
                lambda: core.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.uid={uid}", _request_timeout=self.request_timeout
                ),
            )
        except ApiException as error:
            if error.status == 403:
                return None
            raise api_error(error, "list events") from error
        ordered = sorted(listed.items, key=_event_order)
        lines = [
            EventLine(
                type=event.type or "",
                reason=event.reason or "",
                message=event.message or "",
                time=_event_time(event),
                count=event.count or 1,
            )
            for event in ordered
        ]
        return lines[-limit:] if limit > 0 else []

    def pods(self, selector: str) -> list[PodLine] | None:
        """The pods matching the label selector, by name; None when RBAC forbids listing them."""
        core = client.CoreV1Api(self.api_client)
        try:
            listed = self._call(
                "pods",
                lambda: core.list_namespaced_pod(
                    self.namespace, label_selector=selector, _request_timeout=self.request_timeout
                ),
            )
        except ApiException as error:
            if error.status == 403:
                return None
            raise api_error(error, "list pods") from error
        return sorted((pod_line(pod) for pod in listed.items), key=lambda pod: pod.name)

    def route_parents(self, name: str) -> tuple[bool, list[RouteParent] | None]:
        """(whether the HTTPRoute exists, its parents' Accepted conditions); parents None when RBAC forbids it."""
        group, version = GATEWAY_API_VERSION.split("/")
        try:
            route = self._call(
                "httproute",
                lambda: self.custom.get_namespaced_custom_object(
                    group, version, self.namespace, "httproutes", name, _request_timeout=self.request_timeout
                ),
            )
        except ApiException as error:
            if error.status == 403:
                return True, None
            if error.status == 404:
                return False, []
            raise api_error(error, "get httproute") from error
        parents = []
        for parent in (route.get("status") or {}).get("parents") or []:
            accepted: dict[str, Any] = next(
                (c for c in parent.get("conditions") or [] if c.get("type") == "Accepted"), {}
            )
            parents.append(
                RouteParent(
                    name=str((parent.get("parentRef") or {}).get("name", "?")),
                    accepted=accepted.get("status"),
                    reason=str(accepted.get("reason", "")),
                )
            )
        return True, parents


def pod_line(pod: Any) -> PodLine:
    """A pod as the live view shows it: name, track, phase (or the reason it waits), readiness, age."""
    labels = pod.metadata.labels or {}
    conditions = (pod.status.conditions if pod.status else None) or []
    statuses = (pod.status.container_statuses if pod.status else None) or []
    waiting = next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None)
    unschedulable = next((c.reason for c in conditions if c.type == "PodScheduled" and c.status == "False"), None)
    phase = (pod.status.phase if pod.status else None) or "Unknown"
    if pod.metadata.deletion_timestamp is not None:
        phase = "Terminating"
    return PodLine(
        name=str(pod.metadata.name),
        track=str(labels.get(TRACK_LABEL, "")),
        phase=waiting or unschedulable or phase,
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        created=pod.metadata.creation_timestamp,
    )


def _event_order(event: Any) -> tuple[datetime, int]:
    """By time, then by resourceVersion (creation order in practice: Event times have one-second resolution)."""
    version = str(event.metadata.resource_version or "")
    return _event_time(event) or datetime.min.replace(tzinfo=UTC), int(version) if version.isdigit() else 0


def _event_time(event: Any) -> datetime | None:
    for stamp in (event.last_timestamp, event.event_time, event.first_timestamp, event.metadata.creation_timestamp):
        if isinstance(stamp, datetime):
            return stamp
    return None
