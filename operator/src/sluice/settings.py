"""Operator settings: command-line flags over `SLUICE_*` environment variables over documented defaults.

Every field is one row of the settings table in docs/operations.md: flag `--kebab-name`, variable
`SLUICE_UPPER_NAME`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sluice.core.children import ServingDefaults
from sluice.core.validation import Allowlists

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]


class Settings(BaseSettings):
    """sluice-operator: deploys ModelDeployments and rolls new model versions out as analysed canaries.

    Every flag can also be set as an environment variable SLUICE_<FLAG> (e.g. SLUICE_SERVING_IMAGE for
    --serving-image); a flag wins over the variable. The cluster is the in-cluster one, else the kubeconfig's.
    """

    model_config = SettingsConfigDict(
        env_prefix="SLUICE_",
        cli_prog_name="sluice-operator",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        extra="ignore",
    )

    serving_image: str = Field(
        default="ghcr.io/sluice-dev/sluice-serving:0.1.0",
        description="Model-server image for ModelDeployments that set no spec.serving.image.",
    )
    prometheus_url: str = Field(
        default="http://prometheus.monitoring.svc:9090",
        description="Prometheus base URL for ModelDeployments that set no spec.analysis.prometheus.url.",
    )
    prometheus_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More Prometheus base URLs, comma-separated, that a spec.analysis.prometheus.url may name "
        "(besides prometheus_url); any other is an invalid spec.",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        validation_alias=AliasChoices("mlflow_tracking_uri", "SLUICE_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="MLflow tracking server (also env MLFLOW_TRACKING_URI) that models:/ uris are resolved "
        "through, and that serving pods of such a model are given; empty: models:/ uris are invalid specs.",
    )
    mlflow_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds allowed for resolving one models:/ uri, its artifact's download and hashing included.",
    )
    mlflow_max_model_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="Largest registered model artifact the operator downloads and hashes."
    )
    dataset_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts (host or host:port), comma-separated, an http(s) spec.validation.uri may name; empty: "
        "none (ConfigMap datasets only).",
    )
    dataset_dir: str = Field(
        default="",
        description="Directory a file:// spec.validation.uri must lie under, symlinks resolved; empty: no file:// "
        "datasets.",
    )
    gateways: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Gateways (namespace/name), comma-separated, spec.traffic.gateway.parentRefs may name; empty: "
        "any Gateway.",
    )
    hostname_suffixes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Domains, comma-separated, every spec.traffic.gateway.hostnames entry must lie in (hostnames "
        "are then required); empty: any hostname.",
    )
    mirror_gateway_classes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="GatewayClasses, comma-separated, whose support of the HTTPRoute RequestMirror filter the admin "
        "asserts (for implementations that publish no status.supportedFeatures); a shadow phase behind any other "
        "class mirrors only when the class lists HTTPRouteRequestMirror.",
    )
    canary_url_template: str = Field(
        default="http://{service}.{namespace}.svc:{port}",
        description="Base URL of a canary Service, for the validation gate and an experiment's stable server (which "
        "sends the candidate's requests there); {service}, {namespace} and {port} are filled in.",
    )
    prometheus_timeout: float = Field(default=10.0, gt=0, description="Seconds one Prometheus query may take.")
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces to watch, comma-separated; empty watches the whole cluster.",
    )
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: LogFormat = Field(
        default="text",
        description="text, or json: one JSON object per line; every line carries namespace, name and rollout step.",
    )
    serving_cpu_request: str = Field(default="100m", description="Default CPU request of a serving container.")
    serving_memory_request: str = Field(default="256Mi", description="Default memory request of a serving container.")
    serving_cpu_limit: str = Field(default="1", description="Default CPU limit of a serving container.")
    serving_memory_limit: str = Field(default="1Gi", description="Default memory limit of a serving container.")
    serving_ephemeral_storage_request: str = Field(
        default="256Mi", description="Default ephemeral-storage request of a serving container."
    )
    serving_ephemeral_storage_limit: str = Field(
        default="2Gi",
        description="Default ephemeral-storage limit of a serving container; also the sizeLimit of its model cache.",
    )
    field_manager: str = Field(
        default="sluice", min_length=1, description="Field manager of every server-side apply the operator makes."
    )
    resync_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Longest wait between two reconciles of one ModelDeployment. Events of a ModelDeployment and of "
        "its children wake it at once; this is the safety net for a lost event.",
    )
    kube_timeout: float = Field(default=30.0, gt=0, description="Seconds one Kubernetes API request may take.")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Serve the operator's Prometheus metrics on this port; 0 serves none."
    )
    liveness_endpoint: str = Field(
        default="",
        description="Serve a liveness probe here, e.g. http://0.0.0.0:8081/healthz; empty serves none.",
    )
    readiness_endpoint: str = Field(
        default="",
        description="Serve a readiness probe here, e.g. http://0.0.0.0:8082/readyz: 503 while the ModelDeployment "
        "watch is stalled; empty serves none.",
    )
    watch_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Not ready once the watch has owed a change that a direct read saw for this long.",
    )
    watch_inactivity_seconds: float = Field(
        default=70.0,
        gt=0,
        description="Reconnect a watch stream that delivered nothing, not even a bookmark, for this long.",
    )

    leader_election_lease: str = Field(
        default="",
        description="Name of the coordination.k8s.io Lease the replicas elect a leader with; only its holder acts. "
        "Empty runs without leader election (one replica only).",
    )
    leader_election_namespace: str = Field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE", ""),
        description="Namespace of that Lease; by default the POD_NAMESPACE environment variable.",
    )
    notification_secret: str = Field(
        default="",
        description="Name of the one Secret holding the notification receivers' webhook URLs (key: receiver name, "
        "value: URL; key <receiver>.format: cloudevents or slack); empty: no notifications.",
    )
    notification_namespace: str = Field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE", ""),
        description="Namespace of that Secret; by default the POD_NAMESPACE environment variable.",
    )
    notification_default_receivers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Receivers, comma-separated, notified for ModelDeployments that set no spec.notifications.",
    )
    notification_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts to deliver one notification (the first and the retries)."
    )
    notification_backoff_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Wait before a notification's first retry; doubled after each one."
    )
    notification_timeout: float = Field(
        default=10.0, gt=0, le=60, description="Seconds one webhook request may take, answer included."
    )
    notification_queue_size: int = Field(
        default=100, ge=1, le=10000, description="Notifications waiting per receiver; more are dropped and counted."
    )

    @field_validator(
        "namespaces",
        "notification_default_receivers",
        "prometheus_urls",
        "dataset_hosts",
        "gateways",
        "hostname_suffixes",
        "mirror_gateway_classes",
        mode="before",
    )
    @classmethod
    def _split_lists(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [part.strip() for item in value for part in str(item).split(",") if part.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _lease_needs_a_namespace(self) -> Self:
        if self.leader_election_lease and not self.leader_election_namespace:
            raise ValueError("leader_election_lease needs leader_election_namespace (or POD_NAMESPACE)")
        return self

    @model_validator(mode="after")
    def _notifications_need_a_secret(self) -> Self:
        if self.notification_secret and not self.notification_namespace:
            raise ValueError("notification_secret needs notification_namespace (or POD_NAMESPACE)")
        if self.notification_default_receivers and not self.notification_secret:
            raise ValueError("notification_default_receivers needs notification_secret")
        return self

    @classmethod
    def from_command_line(cls, argv: Sequence[str]) -> Settings:
        """Parse flags (with `--help`) over the environment; argparse exits on `--help` or a bad flag."""
        return cls(_cli_parse_args=list(argv))

    @field_validator("gateways")
    @classmethod
    def _gateways_are_namespaced(cls, value: list[str]) -> list[str]:
        for gateway in value:
            namespace, slash, name = gateway.partition("/")
            if not (namespace and slash and name) or "/" in name:
                raise ValueError(f"{gateway!r} is not namespace/name")
        return value

    def allowlists(self) -> Allowlists:
        """What ModelDeployment specs may point the operator at (docs/security.md)."""
        return Allowlists(
            prometheus_urls=frozenset({self.prometheus_url, *self.prometheus_urls}),
            dataset_hosts=frozenset(host.lower() for host in self.dataset_hosts),
            dataset_dir=self.dataset_dir,
            gateways=frozenset(self.gateways),
            hostname_suffixes=tuple(self.hostname_suffixes),
        )

    def serving_defaults(self) -> ServingDefaults:
        """The defaults the children builders fill in where a spec says nothing."""
        return ServingDefaults(
            image=self.serving_image,
            service_url_template=self.canary_url_template,
            mlflow_tracking_uri=self.mlflow_tracking_uri,
            requests={
                "cpu": self.serving_cpu_request,
                "memory": self.serving_memory_request,
                "ephemeral-storage": self.serving_ephemeral_storage_request,
            },
            limits={
                "cpu": self.serving_cpu_limit,
                "memory": self.serving_memory_limit,
                "ephemeral-storage": self.serving_ephemeral_storage_limit,
            },
        )
