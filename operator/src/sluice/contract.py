"""The names the operator and the model server agree on: the environment the operator gives a serving pod, the
metric families the server exports and their labels, which the operator's PromQL selects.

Defined here once. The model server is a separate package and image that must not import the operator, so
`python -m sluice.codegen` writes a verbatim copy to serving-image/src/sluice_serving/contract.py, and a unit test
fails when that copy is stale. Constants only: no imports, so the copy runs anywhere.
"""

# --- the serving pod's environment, set by the operator ------------------------------------------------------------

ENV_MODEL_NAME = "MODEL_NAME"
ENV_MODEL_VERSION = "MODEL_VERSION"
ENV_MODEL_URI = "MODEL_URI"
ENV_MODEL_FORMAT = "MODEL_FORMAT"
ENV_MODEL_DIGEST = "MODEL_DIGEST"
ENV_TRACK = "SLUICE_TRACK"
ENV_PORT = "PORT"
ENV_MODEL_CACHE_DIR = "MODEL_CACHE_DIR"
ENV_REFERENCE_MODEL_URI = "SLUICE_REFERENCE_MODEL_URI"
"""The shadow phase's reference (the stable model) on a canary."""
ENV_REFERENCE_MODEL_FORMAT = "SLUICE_REFERENCE_MODEL_FORMAT"
ENV_REFERENCE_MODEL_DIGEST = "SLUICE_REFERENCE_MODEL_DIGEST"
ENV_EXPERIMENT_ID = "SLUICE_EXPERIMENT_ID"
"""spec.experiment, on the stable track: the experiment's id, hashed with each entity key into its bucket."""
ENV_EXPERIMENT_HEADER = "SLUICE_EXPERIMENT_HEADER"
"""The request header whose value is the entity key (spec.experiment.stickyBy.header)."""
ENV_EXPERIMENT_SPLIT = "SLUICE_EXPERIMENT_SPLIT"
"""Buckets (of 100) assigned to arm B, the candidate (spec.experiment.split)."""
ENV_EXPERIMENT_CANDIDATE_URL = "SLUICE_EXPERIMENT_CANDIDATE_URL"
"""Base URL of the candidate's Service, from the operator's own naming (never from the ModelDeployment)."""
ENV_EXPERIMENT_CANDIDATE_VERSION = "SLUICE_EXPERIMENT_CANDIDATE_VERSION"
ENV_EXPOSURE_LOG = "SLUICE_EXPOSURE_LOG"
"""true: one structured exposure line per assigned request on the server's log (spec.experiment.exposureLog)."""
ENV_MLFLOW_TRACKING_URI = "MLFLOW_TRACKING_URI"
"""The operator's MLflow tracking server, on pods whose model is a (pinned) models:/ uri."""

# --- tracks: the value of ENV_TRACK and of the `track` label -------------------------------------------------------

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"

# --- metric families the server exports (counters are exposed with the suffix _total, histograms with _bucket) ---

METRIC_PREFIX = "sluice_serving_"
REQUESTS = "sluice_serving_requests"
"""Counter by endpoint and HTTP status code."""
REQUEST_DURATION_SECONDS = "sluice_serving_request_duration_seconds"
"""Histogram by endpoint."""
FALLBACK_RESPONSES = "sluice_serving_fallback_responses"
"""Counter of answers given by the fallback instead of the model."""
PREDICTED_CLASS = "sluice_serving_predicted_class"
"""Counter by predicted class (classifiers)."""
PREDICTIONS = "sluice_serving_predictions"
"""Histogram of predicted values (regressors)."""
INPUT_FEATURE = "sluice_serving_input_feature"
"""Histogram per input feature."""
SHADOW_COMPARISONS = "sluice_serving_shadow_comparisons"
"""Counter of rows compared with the reference model, by result (agree, disagree)."""
SHADOW_ABS_DIFFERENCE = "sluice_serving_shadow_abs_difference"
"""Histogram of |prediction - reference prediction| (regressors)."""
EXPOSURES = "sluice_serving_experiment_exposures"
"""Counter of answered inference requests of an experiment, counted by the assigning (stable) server, by arm,
bucket group, the version that answered and HTTP status code."""

# --- labels --------------------------------------------------------------------------------------------------------

LABEL_MODEL = "model"
"""The ModelDeployment's name (ENV_MODEL_NAME)."""
LABEL_VERSION = "version"
LABEL_TRACK = "track"
BASE_LABELS = (LABEL_MODEL, LABEL_VERSION, LABEL_TRACK)
"""The labels every sluice_serving_ series carries."""
LABEL_NAMESPACE = "namespace"
"""Attached by the scrape configuration, not by the server."""
LABEL_CODE = "code"
LABEL_ENDPOINT = "endpoint"
LABEL_PROTOCOL = "protocol"
"""rest or grpc: which API of the server a request came through."""
LABEL_CLASS = "class"
LABEL_FEATURE = "feature"
LABEL_RESULT = "result"
LABEL_ARM = "arm"
"""A (the stable version), B (the candidate) or unassigned (a request without the entity key, answered by A)."""
LABEL_GROUP = "group"
"""The bucket group: the entity key's bucket (0..99) divided by 10, "0".."9"; "none" for unassigned requests."""
LABEL_SERVED = "served"
"""The version that answered an experiment's request."""
ARM_A = "A"
ARM_B = "B"
ARM_UNASSIGNED = "unassigned"
