"""Routing and request handling, independent of the HTTP transport: (method, path, body) -> Reply."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from sluice_serving import __version__, contract
from sluice_serving.batching import with_batching
from sluice_serving.config import Config
from sluice_serving.encoding import dumps, encode_outputs, tensor_json
from sluice_serving.errors import RequestError, StringLimits
from sluice_serving.fallback import Answerer
from sluice_serving.faults import with_faults
from sluice_serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sluice_serving.metrics import Metrics
from sluice_serving.models import Model, Results
from sluice_serving.protocol import InferRequest, parse_infer, parse_v1_instances
from sluice_serving.shadow import Shadow

if TYPE_CHECKING:
    from sluice_serving.experiment import Assignment, Experiment

log = logging.getLogger("sluice_serving.app")

JSON = b"application/json"
OCTETS = b"application/octet-stream"
EXTENSIONS = ("binary_tensor_data",)
"""The protocol extensions this server implements, listed in its metadata (docs/serving.md, "Protocol coverage")."""
T = TypeVar("T")


class Reply(NamedTuple):
    """A response. `endpoint` is set for inference requests (they are counted and timed); `headers` are
    extra header lines (each ending in CRLF)."""

    status: int
    body: bytes
    content_type: bytes = JSON
    endpoint: str | None = None
    headers: bytes = b""


def error(status: int, message: str, endpoint: str | None = None) -> Reply:
    return Reply(status, dumps({"error": message}), JSON, endpoint)


class App:
    """The V2 (and V1 `:predict`) API over one model, plus health, metadata and /metrics; or, as the app of
    SLUICE_METRICS_PORT (`metrics_only`), /metrics alone, which the API port then does not serve."""

    def __init__(self, cfg: Config, metrics: Metrics, metrics_only: bool = False) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.metrics_only = metrics_only
        self._serves_metrics = metrics_only or cfg.metrics_port is None
        self.strings = StringLimits(cfg.max_string_chars, cfg.max_strings_total_chars)
        self.model: Model | None = None
        self.fallback: Answerer | None = None
        self.shadow: Shadow | None = None
        """Set in the shadow phase (SLUICE_REFERENCE_MODEL_URI): every answer is compared with the stable model."""
        self.experiment: Experiment | None = None
        """Set on the stable track during an experiment (SLUICE_EXPERIMENT_ID): inference requests are assigned."""
        self.draining = False
        self._versions = (cfg.model_version,)
        self._infer_path = f"/v2/models/{cfg.model_name}/infer"  # (MODEL_NAME holds no '/')
        self._next_fallback_log = 0.0

    @property
    def ready(self) -> bool:
        """The pod is ready: this worker's model is loaded (and every other worker's, with SLUICE_WORKERS > 1)."""
        peers = self.metrics.peers
        return self.model is not None and not self.draining and (peers is None or peers.all_ready())

    def set_model(self, model: Model, fallback: Answerer | None = None) -> None:
        """Serve `model` (wrapped by the batching SLUICE_MAX_BATCH_* and the fault injection SLUICE_FAULT_*
        configure, if any)."""
        self.model = with_faults(with_batching(model, self.cfg.max_batch_size, self.cfg.max_batch_time), self.cfg)
        self.fallback = fallback

    def handle(
        self, method: str, path: str, body: bytes, header_length: bytes | None = None, key: bytes | None = None
    ) -> Reply | Awaitable[Reply]:
        """Answer one request (`header_length`: its Inference-Header-Content-Length header; `key`: its entity key
        during an experiment): the reply, or an awaitable of it when the model (or the candidate) answers later;
        never raises."""
        experiment = self.experiment
        if experiment is None or not self.accepts_body(method, path) or "/versions/" in path:
            return self._answer(method, path, body, header_length)  # (a request naming its version is not assigned)
        assignment = experiment.assign(key)
        if assignment.arm == contract.ARM_B:
            return experiment.forward(assignment, path, body, header_length)
        reply = self._answer(method, path, body, header_length)
        if isinstance(reply, Reply):
            return experiment.expose(assignment, reply)
        return self._expose_later(experiment, assignment, reply)

    async def _expose_later(self, experiment: Experiment, assignment: Assignment, pending: Awaitable[Reply]) -> Reply:
        return experiment.expose(assignment, await pending)

    def _answer(self, method: str, path: str, body: bytes, header_length: bytes | None) -> Reply | Awaitable[Reply]:
        try:
            reply = self._route(method, path, body, header_length)
        except Exception as exc:
            return self._error(exc, method, path)
        if isinstance(reply, Reply):
            return reply
        return self._settle(reply, method, path)

    async def _settle(self, pending: Awaitable[Reply], method: str, path: str) -> Reply:
        try:
            return await pending
        except Exception as exc:
            return self._error(exc, method, path)

    def _error(self, exc: Exception, method: str, path: str) -> Reply:
        if isinstance(exc, RequestError):
            return error(exc.status, exc.message, _endpoint_of(method, path))
        log.exception("unexpected error", extra={"path": path})
        return error(500, f"internal error: {type(exc).__name__}: {exc}", _endpoint_of(method, path))

    def accepts_body(self, method: str, path: str) -> bool:
        """Whether a request's body would be read (for `Expect: 100-continue`): a POST to this model's V2
        infer or V1 :predict."""
        if method != "POST":
            return False
        parts = path.strip("/").split("/")
        name = self.cfg.model_name
        if parts == ["v1", "models", name + ":predict"]:
            return True
        if parts[:3] != ["v2", "models", name] or parts[-1] != "infer":
            return False
        return len(parts) == 4 or (len(parts) == 6 and parts[3] == "versions" and parts[4] in self._versions)

    def _route(self, method: str, path: str, body: bytes, header_length: bytes | None) -> Reply | Awaitable[Reply]:
        if path == self._infer_path and not self.metrics_only:  # the common request, as the general route takes it
            if method != "POST":
                _require(method, "POST")
            length = None if header_length is None else _header_length(header_length)
            return self._infer(self.cfg.model_name, None, body, length)
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "metrics" and len(parts) == 1 and self._serves_metrics:
            _require(method, "GET")
            return Reply(200, self.metrics.render(), METRICS_CONTENT_TYPE)
        if self.metrics_only:
            raise RequestError(404, f"no route for {path}; this port serves /metrics only")
        if head == "v2":
            return self._v2(method, parts[1:], body, header_length)
        if head == "v1" and len(parts) == 3 and parts[1] == "models":
            name, _, verb = parts[2].partition(":")
            if verb == "predict":
                _require(method, "POST")
                return self._v1_predict(name, body)
            if not verb:
                _require(method, "GET")
                self.check_model(name, None)
                return Reply(200, dumps({"name": name, "ready": self.ready}))
        raise RequestError(404, f"no route for {path}")

    def _v2(self, method: str, parts: list[str], body: bytes, header_length: bytes | None) -> Reply | Awaitable[Reply]:
        if not parts or parts == [""]:
            _require(method, "GET")
            return Reply(200, dumps(self.server_metadata()))
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            _require(method, "GET")
            if parts[1] == "live":
                return Reply(200, b'{"live":true}')
            return Reply(200, b'{"ready":true}') if self.ready else Reply(503, b'{"ready":false}')
        if parts[0] == "models" and len(parts) >= 2:
            name, rest = parts[1], parts[2:]
            version = None
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = rest[1], rest[2:]
            if rest == ["infer"]:
                _require(method, "POST")
                return self._infer(name, version, body, _header_length(header_length))
            if rest == ["ready"]:
                _require(method, "GET")
                self.check_model(name, version)
                status = 200 if self.ready else 503
                return Reply(status, dumps({"name": name, "ready": self.ready}))
            if not rest:
                _require(method, "GET")
                return Reply(200, dumps(self.metadata(name, version)))
        raise RequestError(404, "no route for /v2/" + "/".join(parts))

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "sluice-serving", "version": __version__, "extensions": list(EXTENSIONS)}

    def check_model(self, name: str, version: str | None) -> None:
        """A 404 unless `name` (and `version`, if given) is the model this server serves."""
        if name != self.cfg.model_name:
            raise RequestError(404, f"unknown model {name!r}; this server serves {self.cfg.model_name!r}")
        if version is not None and version not in self._versions:
            raise RequestError(404, f"unknown version {version!r} of model {name!r}; it has {list(self._versions)}")

    def _loaded(self, name: str, version: str | None) -> Model:
        self.check_model(name, version)
        if self.model is None:
            raise RequestError(503, f"model {name!r} is not ready (still loading)")
        return self.model

    def metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """The model's metadata (a 404 for another model, a 503 before it is loaded)."""
        model = self._loaded(name, version)
        return {
            "name": self.cfg.model_name,
            "versions": list(self._versions),
            "platform": model.platform,
            "inputs": [s.as_json() for s in model.inputs],
            "outputs": [s.as_json() for s in model.outputs],
        }

    def infer(
        self,
        name: str,
        version: str | None,
        parse: Callable[[Model], InferRequest],
        reply: Callable[[InferRequest, Results, str | None], T],
    ) -> T | Awaitable[T]:
        """One inference, whichever protocol asked: `parse` validates the request against the model, `reply`
        answers with the results and the fallback's kind when the fallback answered (None when the model did).
        Raises RequestError (or the model's error); an awaitable when the model answers later."""
        model = self._loaded(name, version)
        request = parse(model)

        def answer(results: Results, fallback: str | None) -> T:
            return reply(request, results, fallback)

        return self._predict(model, request.inputs, request.outputs, "infer", answer)

    def _infer(
        self, name: str, version: str | None, body: bytes, header_length: int | None
    ) -> Reply | Awaitable[Reply]:
        model = self._loaded(name, version)  # (`infer` unrolled: no closures on REST's hot path)
        request = parse_infer(body, model.inputs, model.outputs, self.strings, header_length)
        return self._predict(model, request.inputs, request.outputs, "infer", partial(self._infer_reply, request))

    def _infer_reply(self, request: InferRequest, results: Results, fallback: str | None) -> Reply:
        outputs, binary = encode_outputs(results, request.outputs, request.binary_outputs)
        doc: dict[str, Any] = {
            "model_name": self.cfg.model_name,
            "model_version": self.cfg.model_version,
            "outputs": outputs,
        }
        if request.id is not None:
            doc["id"] = request.id
        head = dumps(doc)
        if not binary:
            return Reply(200, head, JSON, "infer", b"" if fallback is None else _fallback_header(fallback))
        headers = _fallback_header(fallback) + b"inference-header-content-length: %d\r\n" % len(head)
        return Reply(200, b"".join((head, *binary)), OCTETS, "infer", headers=headers)

    def _v1_predict(self, name: str, body: bytes) -> Reply | Awaitable[Reply]:
        model = self._loaded(name, None)
        if len(model.inputs) != 1:
            raise RequestError(400, "the V1 :predict form needs a single-input model; use /v2 infer")
        spec = model.inputs[0]
        x = parse_v1_instances(body, spec, self.strings)

        def reply(results: Results, fallback: str | None) -> Reply:
            predictions = tensor_json("", results[model.prediction_output])["data"]
            return Reply(200, dumps({"predictions": predictions}), JSON, "predict", headers=_fallback_header(fallback))

        return self._predict(model, {spec.name: x}, (model.prediction_output,), "predict", reply)

    def _predict(
        self,
        model: Model,
        inputs: dict[str, Any],
        wanted: tuple[str, ...],
        endpoint: str,
        reply: Callable[[Results, str | None], T],
    ) -> T | Awaitable[T]:
        """`reply` to the model's results and None, or, when the model raises and a fallback is configured,
        to the fallback's results and its kind; an awaitable of it when the model answers later."""
        try:
            answer = model.answer(inputs, wanted)
        except Exception as exc:
            return reply(*self._recover(exc, model, inputs, wanted, endpoint))
        if type(answer) is not dict and inspect.isawaitable(answer):  # (a model's results are a dict)
            return self._predict_later(answer, model, inputs, wanted, endpoint, reply)
        return reply(*self._observe(model, inputs, answer, None))

    async def _predict_later(  # noqa: PLR0917 (the arguments of _predict, carried over)
        self,
        answer: Awaitable[Results],
        model: Model,
        inputs: dict[str, Any],
        wanted: tuple[str, ...],
        endpoint: str,
        reply: Callable[[Results, str | None], T],
    ) -> T:
        try:
            results = await answer
        except Exception as exc:
            return reply(*self._recover(exc, model, inputs, wanted, endpoint))
        return reply(*self._observe(model, inputs, results, None))

    def _recover(
        self, exc: Exception, model: Model, inputs: dict[str, Any], wanted: tuple[str, ...], endpoint: str
    ) -> tuple[Results, str | None]:
        """After the model raised: a 400 for bad input, else the fallback's answer (or the error again)."""
        if isinstance(exc, (ValueError, TypeError)):
            raise RequestError(400, f"the model rejected the input: {exc}") from None
        if self.fallback is None:
            raise exc
        results = self._fall_back(self.fallback, exc, inputs, wanted)
        self.metrics.fallback(endpoint, self.fallback.kind)
        return self._observe(model, inputs, results, self.fallback.kind)

    def _observe(
        self, model: Model, inputs: dict[str, Any], results: Results, fallback: str | None
    ) -> tuple[Results, str | None]:
        """Record the answer's distributions, and hand it to the shadow comparison unless it is a fallback's."""
        self.metrics.distributions.observe(next(iter(inputs.values())), results[model.prediction_output])
        if self.shadow is not None and fallback is None:
            self.shadow.submit(inputs, results[model.prediction_output])
        return results, fallback

    def _fall_back(
        self, fallback: Answerer, exc: Exception, inputs: dict[str, Any], wanted: tuple[str, ...]
    ) -> dict[str, Any]:
        now = time.monotonic()
        if now >= self._next_fallback_log:  # at most one line a second: failures can come at the request rate
            self._next_fallback_log = now + 1.0
            log.warning("the model raised; the fallback answers", extra={"error": f"{type(exc).__name__}: {exc}"})
        try:
            return fallback.predict(inputs, wanted)
        except Exception as fallback_exc:
            raise exc from fallback_exc


def _fallback_header(fallback: str | None) -> bytes:
    return b"" if fallback is None else b"x-sluice-fallback: " + fallback.encode() + b"\r\n"


def _header_length(raw: bytes | None) -> int | None:
    """The Inference-Header-Content-Length header's value (None when absent), or a 400."""
    if raw is None:
        return None
    if not raw.strip().isdigit() or len(raw) > 20:
        raise RequestError(400, "Inference-Header-Content-Length must be a decimal number of bytes")
    return int(raw)


def _require(method: str, allowed: str) -> None:
    if method != allowed and not (method == "HEAD" and allowed == "GET"):
        raise RequestError(405, f"method {method} is not allowed here; use {allowed}")


def _endpoint_of(method: str, path: str) -> str | None:
    if method == "POST" and path.endswith("/infer") and path.startswith("/v2/models/"):
        return "infer"
    if method == "POST" and path.endswith(":predict") and path.startswith("/v1/models/"):
        return "predict"
    return None
