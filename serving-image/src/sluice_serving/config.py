"""Configuration from the environment: every setting, its default and its meaning in one table."""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sluice_serving.models import FORMATS

DEFAULT_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
DEFAULT_PREDICTION_BUCKETS = (-10.0, -5.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
DEFAULT_FEATURE_BUCKETS = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: name, default (as the text a user would write) and help."""

    env: str
    default: str
    help: str


SETTINGS = (
    Setting("MODEL_NAME", "model", "Name the model is served under (/v2/models/{MODEL_NAME})."),
    Setting("MODEL_VERSION", "1", "Version reported in metadata, responses and the `version` metric label."),
    Setting(
        "MODEL_URI",
        "",
        "Required. Path, file://, http(s)://, s3:// (extra [s3]), gs:// (extra [gcs]), or an MLflow registry URI "
        "models:/<name>/<version> or models:/<name>@<alias> (through MLFLOW_TRACKING_URI).",
    ),
    Setting(
        "MODEL_FORMAT",
        "",
        "onnx | sklearn | xgboost | lightgbm | python. Empty: from the file suffix "
        "(.onnx; .joblib/.pkl/.pickle/.skops; .ubj; .whl), or a models:/ uri's flavor (its MLmodel file).",
    ),
    Setting(
        "MLFLOW_TRACKING_URI",
        "",
        "The MLflow tracking server (http(s)://) a models:/ MODEL_URI is resolved through; its artifact is fetched "
        "through the server's artifact proxy.",
    ),
    Setting(
        "MODEL_DIGEST",
        "",
        "sha256:<64 hex>. Checked before loading; a mismatch refuses to start. "
        "Required for pickle-based files (joblib/pickle) and python models, optional for the other formats. "
        "Of a directory: `sluice-serving-digest DIR`.",
    ),
    Setting("SLUICE_TRACK", "stable", "stable | canary: the `track` metric label."),
    Setting("SLUICE_HOST", "0.0.0.0", "Listen address (tests use 127.0.0.1)."),
    Setting("PORT", "8080", "Listen port for the API and the health probes (and /metrics unless SLUICE_METRICS_PORT)."),
    Setting(
        "SLUICE_METRICS_PORT",
        "",
        "Serve /metrics on this port only (not on PORT), so that PORT can be exposed alone. Empty: /metrics on PORT.",
    ),
    Setting(
        "SLUICE_GRPC_PORT",
        "",
        "Serve the Open Inference Protocol's gRPC API (inference.GRPCInferenceService) on this port. Empty: off.",
    ),
    Setting("MODEL_CACHE_DIR", "/tmp/sluice-models", "Local model cache; mount an emptyDir here."),
    Setting("SLUICE_MAX_BODY_BYTES", "16777216", "Largest request body accepted; larger gets 413 and a close."),
    Setting("SLUICE_MAX_URL_BYTES", "8192", "Longest request target (path and query) accepted; longer gets 414."),
    Setting("SLUICE_MAX_HEADER_BYTES", "65536", "Largest request line plus headers accepted; larger gets 431."),
    Setting(
        "SLUICE_REQUEST_TIMEOUT",
        "30",
        "Seconds from a request's first byte by which its head and body must have arrived; else 408 and a close.",
    ),
    Setting("SLUICE_MAX_CONNECTIONS", "1024", "Open connections per worker; one more is answered 503 and closed."),
    Setting("SLUICE_MAX_STRING_CHARS", "65536", "Longest string in a BYTES tensor (characters); longer gets 400."),
    Setting(
        "SLUICE_MAX_STRINGS_TOTAL_CHARS", "1048576", "Characters in all strings of one BYTES tensor; more gets 400."
    ),
    Setting(
        "SLUICE_NUM_THREADS",
        "1",
        "Threads of onnxruntime, XGBoost and LightGBM, and of every BLAS and OpenMP pool (set at start; "
        "OMP_NUM_THREADS, OPENBLAS_NUM_THREADS or MKL_NUM_THREADS, when set, win for their pools).",
    ),
    Setting("SLUICE_DRAIN_TIMEOUT", "25", "Seconds to wait for in-flight requests after SIGTERM."),
    Setting("SLUICE_KEEPALIVE_TIMEOUT", "75", "Seconds an idle keep-alive connection is kept open."),
    Setting("SLUICE_DOWNLOAD_TIMEOUT", "120", "Seconds allowed for fetching the model, in total (all retries)."),
    Setting(
        "SLUICE_MAX_MODEL_BYTES",
        "2147483648",
        "Largest model file fetched (each of model, fallback and reference); a larger one fails the start.",
    ),
    Setting("SLUICE_LOG_LEVEL", "INFO", "DEBUG | INFO | WARNING | ERROR. Logs are JSON lines on stderr."),
    Setting("SLUICE_ACCESS_LOG", "false", "Log every request (costly at high request rates)."),
    Setting("SLUICE_LATENCY_BUCKETS", ",".join(map(str, DEFAULT_LATENCY_BUCKETS)), "Latency buckets (s)."),
    Setting(
        "SLUICE_PREDICTION_BUCKETS",
        ",".join(map(str, DEFAULT_PREDICTION_BUCKETS)),
        "Buckets of the regression value histogram.",
    ),
    Setting(
        "SLUICE_FEATURE_BUCKETS",
        ",".join(map(str, DEFAULT_FEATURE_BUCKETS)),
        "Buckets of the per-feature input histograms (same for every feature).",
    ),
    Setting("SLUICE_MONITORED_FEATURES", "32", "Input features (columns) with a histogram; 0 turns it off."),
    Setting("SLUICE_MAX_CLASSES", "64", "Distinct class labels counted; further labels count as `other`."),
    Setting(
        "SLUICE_WORKERS",
        "1",
        "Server processes sharing the port (SO_REUSEPORT); /metrics sums them all. Each loads the model.",
    ),
    Setting(
        "SLUICE_FALLBACK",
        "",
        "Answer when the model raises: constant:<json> (the prediction, or an object by output name), "
        "or model (the SLUICE_FALLBACK_MODEL_* model). Counted in sluice_serving_fallback_responses_total.",
    ),
    Setting("SLUICE_FALLBACK_MODEL_URI", "", "The fallback model (e.g. the previous version), like MODEL_URI."),
    Setting("SLUICE_FALLBACK_MODEL_DIGEST", "", "sha256:<64 hex> of the fallback model, like MODEL_DIGEST."),
    Setting("SLUICE_FALLBACK_MODEL_FORMAT", "", "Like MODEL_FORMAT; empty: from the fallback model's suffix."),
    Setting(
        "SLUICE_REFERENCE_MODEL_URI",
        "",
        "Shadow phase (set by the operator on a canary): the stable model to compare every answer with.",
    ),
    Setting("SLUICE_REFERENCE_MODEL_FORMAT", "", "Like MODEL_FORMAT: the reference model's format."),
    Setting(
        "SLUICE_REFERENCE_MODEL_DIGEST", "", "sha256:<64 hex> of the reference model (required for pickle and python)."
    ),
    Setting(
        "SLUICE_EXPERIMENT_ID",
        "",
        "An experiment (set by the operator on the stable track): its id, hashed with each entity key. Empty: off.",
    ),
    Setting("SLUICE_EXPERIMENT_HEADER", "", "The request header whose value is the entity key."),
    Setting("SLUICE_EXPERIMENT_SPLIT", "50", "Buckets (of 100) of entity keys answered by the candidate (arm B)."),
    Setting("SLUICE_EXPERIMENT_CANDIDATE_URL", "", "http:// base URL of the candidate's Service, for arm B."),
    Setting("SLUICE_EXPERIMENT_CANDIDATE_VERSION", "", "The candidate's version (the `served` label of arm B)."),
    Setting("SLUICE_EXPOSURE_LOG", "false", "Log one JSON exposure line per assigned request of an experiment."),
    Setting(
        "SLUICE_MAX_BATCH_SIZE",
        "1",
        "Adaptive batching: up to this many concurrent one-row requests are merged into one model call. 1: off.",
    ),
    Setting(
        "SLUICE_MAX_BATCH_TIME",
        "0",
        "Seconds a one-row request waits for others to merge with (batching on). 0: only those that arrived with it.",
    ),
    Setting("SLUICE_FAULT_ERROR_RATE", "0", "Testing aid: fraction (0..1) of infer requests answered 500."),
    Setting("SLUICE_FAULT_LATENCY", "0", "Testing aid: seconds added to every answer of the model."),
)


@dataclass(frozen=True)
class Fallback:
    """What answers when the model raises: a constant (`outputs`: JSON values by output name, or the
    prediction when keyed by "") or a second model (`uri`, `digest`, `format`)."""

    kind: str  # "constant" or "model"
    outputs: tuple[tuple[str, Any], ...] = ()
    uri: str = ""
    digest: str = ""
    format: str = ""


@dataclass(frozen=True)
class ExperimentConfig:
    """The SLUICE_EXPERIMENT_* settings (experiment.py)."""

    experiment_id: str
    header: str
    split: int
    candidate_url: str
    candidate_version: str
    exposure_log: bool = False


@dataclass(frozen=True)
class Config:
    """The parsed settings; build it with `Config.from_env`."""

    model_name: str
    model_version: str
    model_uri: str
    model_format: str
    model_digest: str
    track: str
    host: str
    port: int
    metrics_port: int | None
    grpc_port: int | None
    cache_dir: str
    max_body_bytes: int
    max_url_bytes: int
    max_header_bytes: int
    request_timeout: float
    max_connections: int
    max_string_chars: int
    max_strings_total_chars: int
    max_model_bytes: int
    num_threads: int
    drain_timeout: float
    keepalive_timeout: float
    download_timeout: float
    log_level: str
    access_log: bool
    latency_buckets: tuple[float, ...]
    prediction_buckets: tuple[float, ...]
    feature_buckets: tuple[float, ...]
    monitored_features: int
    max_classes: int
    fault_error_rate: float
    fault_latency: float
    workers: int = 1
    fallback: Fallback | None = None
    experiment: ExperimentConfig | None = None
    mlflow_tracking_uri: str = ""
    max_batch_size: int = 1
    max_batch_time: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read every setting, apply defaults, and validate; raises ConfigError naming the variable."""
        env = os.environ if environ is None else environ
        defaults = {s.env: s.default for s in SETTINGS}

        def get(name: str) -> str:
            return env.get(name, defaults[name]).strip()

        def parse(name: str, conv: Callable[[str], Any], check: Callable[[Any], bool], what: str) -> Any:
            raw = get(name)
            try:
                value = conv(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not {what}") from None
            if not check(value):
                raise ConfigError(f"{name}={raw!r} is not {what}")
            return value

        uri = get("MODEL_URI")
        if not uri:
            raise ConfigError("MODEL_URI is required (a path, file://, http(s)://, s3:// or gs:// URI)")
        fmt = get("MODEL_FORMAT").lower() or ("" if uri.startswith("models:/") else _format_from_suffix(uri))
        if fmt:
            check_format("MODEL_FORMAT", fmt)
        digest = get("MODEL_DIGEST").lower()
        if digest and not DIGEST_RE.match(digest):
            raise ConfigError("MODEL_DIGEST must look like sha256:<64 lowercase hex digits>")
        track = get("SLUICE_TRACK").lower()
        if track not in ("stable", "canary"):
            raise ConfigError(f"SLUICE_TRACK={track!r} must be stable or canary")
        level = get("SLUICE_LOG_LEVEL").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(f"SLUICE_LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR")
        name = get("MODEL_NAME")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise ConfigError(f"MODEL_NAME={name!r} must be letters, digits, '.', '_' or '-'")

        def nonneg(v: float) -> bool:
            return v >= 0

        def positive(v: float) -> bool:
            return v > 0

        require_digest_over_http(uri, digest, "MODEL_DIGEST")

        return cls(
            workers=parse("SLUICE_WORKERS", int, lambda v: 1 <= v <= 64, "1..64"),
            experiment=_experiment(get, parse),
            fallback=_fallback(get),
            max_batch_size=parse("SLUICE_MAX_BATCH_SIZE", int, lambda v: 1 <= v <= 1024, "1..1024"),
            max_batch_time=parse("SLUICE_MAX_BATCH_TIME", float, lambda v: 0 <= v <= 1, "seconds, 0..1"),
            model_name=name,
            model_version=get("MODEL_VERSION"),
            model_uri=uri,
            mlflow_tracking_uri=get("MLFLOW_TRACKING_URI"),
            model_format=fmt,
            model_digest=digest,
            track=track,
            host=get("SLUICE_HOST"),
            port=parse("PORT", int, lambda v: 0 <= v <= 65535, "a port number"),
            cache_dir=get("MODEL_CACHE_DIR"),
            metrics_port=parse("SLUICE_METRICS_PORT", _optional_int, _port_or_none, "empty or a port number"),
            grpc_port=parse("SLUICE_GRPC_PORT", _optional_int, _port_or_none, "empty or a port number"),
            max_body_bytes=parse("SLUICE_MAX_BODY_BYTES", int, positive, "a positive integer"),
            max_url_bytes=parse("SLUICE_MAX_URL_BYTES", int, positive, "a positive integer"),
            max_header_bytes=parse("SLUICE_MAX_HEADER_BYTES", int, positive, "a positive integer"),
            request_timeout=parse("SLUICE_REQUEST_TIMEOUT", float, positive, "seconds > 0"),
            max_connections=parse("SLUICE_MAX_CONNECTIONS", int, positive, "a positive integer"),
            max_string_chars=parse("SLUICE_MAX_STRING_CHARS", int, positive, "a positive integer"),
            max_strings_total_chars=parse("SLUICE_MAX_STRINGS_TOTAL_CHARS", int, positive, "a positive integer"),
            max_model_bytes=parse("SLUICE_MAX_MODEL_BYTES", int, positive, "a positive integer"),
            num_threads=parse("SLUICE_NUM_THREADS", int, lambda v: v > 0, "a positive integer"),
            drain_timeout=parse("SLUICE_DRAIN_TIMEOUT", float, nonneg, "a number of seconds"),
            keepalive_timeout=parse("SLUICE_KEEPALIVE_TIMEOUT", float, lambda v: v > 0, "seconds > 0"),
            download_timeout=parse("SLUICE_DOWNLOAD_TIMEOUT", float, lambda v: v > 0, "seconds > 0"),
            log_level=level,
            access_log=parse("SLUICE_ACCESS_LOG", _boolean, lambda v: True, "true or false"),
            latency_buckets=parse("SLUICE_LATENCY_BUCKETS", _buckets, bool, "increasing numbers"),
            prediction_buckets=parse("SLUICE_PREDICTION_BUCKETS", _buckets, bool, "increasing numbers"),
            feature_buckets=parse("SLUICE_FEATURE_BUCKETS", _buckets, bool, "increasing numbers"),
            monitored_features=parse("SLUICE_MONITORED_FEATURES", int, lambda v: 0 <= v <= 1000, "0..1000"),
            max_classes=parse("SLUICE_MAX_CLASSES", int, lambda v: 1 <= v <= 1000, "1..1000"),
            fault_error_rate=parse("SLUICE_FAULT_ERROR_RATE", float, lambda v: 0 <= v <= 1, "a fraction 0..1"),
            fault_latency=parse("SLUICE_FAULT_LATENCY", float, nonneg, "a number of seconds >= 0"),
        )


def _fallback(get: Callable[[str], str]) -> Fallback | None:
    raw = get("SLUICE_FALLBACK")
    uri = get("SLUICE_FALLBACK_MODEL_URI")
    kind, _, value = raw.partition(":")
    kind = kind.strip().lower()
    if not raw:
        if uri:
            raise ConfigError("SLUICE_FALLBACK_MODEL_URI is set but SLUICE_FALLBACK is not 'model'")
        return None
    if kind == "constant":
        if uri:
            raise ConfigError("SLUICE_FALLBACK=constant:... and SLUICE_FALLBACK_MODEL_URI exclude each other")
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ConfigError(f"SLUICE_FALLBACK={raw!r}: the part after 'constant:' is not JSON") from None
        if doc is None or (isinstance(doc, dict) and (not doc or None in doc.values())):
            raise ConfigError(f"SLUICE_FALLBACK={raw!r}: give a value, or an object of values by output name")
        outputs = tuple(doc.items()) if isinstance(doc, dict) else (("", doc),)
        return Fallback("constant", outputs=outputs)
    if kind == "model" and not value:
        if not uri:
            raise ConfigError("SLUICE_FALLBACK=model needs SLUICE_FALLBACK_MODEL_URI")
        fmt = get("SLUICE_FALLBACK_MODEL_FORMAT").lower() or _format_from_suffix(uri, "SLUICE_FALLBACK_MODEL_FORMAT")
        check_format("SLUICE_FALLBACK_MODEL_FORMAT", fmt)
        digest = get("SLUICE_FALLBACK_MODEL_DIGEST").lower()
        if digest and not DIGEST_RE.match(digest):
            raise ConfigError("SLUICE_FALLBACK_MODEL_DIGEST must look like sha256:<64 lowercase hex digits>")
        require_digest_over_http(uri, digest, "SLUICE_FALLBACK_MODEL_DIGEST")
        return Fallback("model", uri=uri, digest=digest, format=fmt)
    raise ConfigError(f"SLUICE_FALLBACK={raw!r} must be constant:<json> or model")


def _experiment(get: Callable[[str], str], parse: Callable[..., Any]) -> ExperimentConfig | None:
    identifier = get("SLUICE_EXPERIMENT_ID")
    if not identifier:
        return None
    header = get("SLUICE_EXPERIMENT_HEADER")
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+", header):
        raise ConfigError(f"SLUICE_EXPERIMENT_HEADER={header!r} must be an HTTP header name")
    url = get("SLUICE_EXPERIMENT_CANDIDATE_URL")
    if not url.startswith("http://"):
        raise ConfigError("SLUICE_EXPERIMENT_CANDIDATE_URL must be an http:// URL")
    return ExperimentConfig(
        experiment_id=identifier,
        header=header.lower(),
        split=parse("SLUICE_EXPERIMENT_SPLIT", int, lambda v: 0 <= v <= 100, "0..100"),
        candidate_url=url,
        candidate_version=get("SLUICE_EXPERIMENT_CANDIDATE_VERSION"),
        exposure_log=parse("SLUICE_EXPOSURE_LOG", _boolean, lambda v: True, "true or false"),
    )


def check_format(variable: str, fmt: str) -> None:
    """`fmt` is one of the formats the server loads."""
    if fmt not in FORMATS:
        raise ConfigError(f"{variable}={fmt!r} must be one of {', '.join(FORMATS)}")


def require_digest_over_http(uri: str, digest: str, digest_env: str) -> None:
    """A model fetched over plain http:// must be pinned: anyone on the network path could replace it."""
    if not digest and uri.lower().startswith("http://"):
        raise ConfigError(f"{digest_env} is required for a plain http:// model URI (or use https://)")


def _optional_int(raw: str) -> int | None:
    return int(raw) if raw else None


def _port_or_none(v: int | None) -> bool:
    return v is None or 0 <= v <= 65535


def _format_from_suffix(uri: str, variable: str = "MODEL_FORMAT") -> str:
    path = uri.split("?", 1)[0].lower()
    if path.endswith(".onnx"):
        return "onnx"
    if path.endswith((".joblib", ".pkl", ".pickle", ".skops")):
        return "sklearn"
    if path.endswith(".ubj"):
        return "xgboost"
    if path.endswith(".whl"):
        return "python"
    uri_variable = variable.replace("FORMAT", "URI")
    raise ConfigError(
        f"{variable} is required when {uri_variable} has no .onnx/.joblib/.pkl/.pickle/.skops/.ubj/.whl suffix"
    )


def _boolean(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def _buckets(raw: str) -> tuple[float, ...]:
    values = tuple(float(part) for part in raw.split(",") if part.strip())
    if not values or any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(raw)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(raw)
    return values


def help_table() -> str:
    """The settings as text for `--help`."""
    lines = []
    for s in SETTINGS:
        default = s.default if s.default else "(none)"
        lines.append(f"  {s.env}\n      {s.help}\n      default: {default}")
    return "\n".join(lines)
