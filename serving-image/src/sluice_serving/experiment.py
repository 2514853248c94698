"""Sticky A/B assignment, on the stable track during an experiment (the operator sets SLUICE_EXPERIMENT_*).

Every inference request of this model (REST infer and :predict) is assigned an arm by its entity key, the value
of the SLUICE_EXPERIMENT_HEADER header: the key's bucket is sha256(experiment id, newline, key) read as a number,
modulo 100, and buckets below SLUICE_EXPERIMENT_SPLIT are arm B. So one key gets one arm for the experiment's
whole life, on every replica, without any state. Arm A is answered here; arm B is sent on to the candidate's
Service (SLUICE_EXPERIMENT_CANDIDATE_URL, set by the operator from its own naming), bounded: one connection per
request, SLUICE_REQUEST_TIMEOUT for the whole exchange, an answer no larger than SLUICE_MAX_BODY_BYTES, at most
MAX_FORWARDED requests on their way at once (503 beyond). A request without the key is answered by A and counted
as `unassigned`.

Every answered request is counted in `sluice_serving_experiment_exposures_total` by arm, bucket group (the bucket
divided by 10), the version that answered and the status code (metrics.py; no per-key label). With
SLUICE_EXPOSURE_LOG=true each assigned request also writes one JSON line (logger `sluice_serving.exposure`: the
experiment id, the key's hash, its bucket, the arm, the version that answered, the status code, the time).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

from sluice_serving import contract
from sluice_serving.app import JSON, Reply, error
from sluice_serving.config import ExperimentConfig
from sluice_serving.metrics import Metrics

log = logging.getLogger("sluice_serving.exposure")

BUCKETS = 100
GROUP_SIZE = 10
MAX_FORWARDED = 256
"""Requests on their way to the candidate at once; one more is answered 503."""
_PASSED_ON = (b"inference-header-content-length", b"x-sluice-fallback")
"""Headers of the candidate's answer given to the client (besides its content type)."""


class Assignment(NamedTuple):
    arm: str
    group: str
    bucket: int | None
    key_hash: str | None


def assign(experiment_id: str, split: int, key: bytes | None) -> Assignment:
    """The arm of an entity key: B when its bucket is below `split`; unassigned (answered by A) without a key."""
    if not key:
        return Assignment(contract.ARM_UNASSIGNED, "none", None, None)
    digest = hashlib.sha256(experiment_id.encode() + b"\n" + key).digest()
    bucket = int.from_bytes(digest[:8], "big") % BUCKETS
    arm = contract.ARM_B if bucket < split else contract.ARM_A
    return Assignment(arm, str(bucket // GROUP_SIZE), bucket, digest.hex()[:32])


def groups(split: int) -> list[tuple[str, str]]:
    """Every (arm, group) an assigned request can be counted in: a group holds the arms its buckets fall in."""
    pairs = []
    for group in range(BUCKETS // GROUP_SIZE):
        first, last = group * GROUP_SIZE, group * GROUP_SIZE + GROUP_SIZE - 1
        pairs += [(contract.ARM_B, str(group))] if first < split else []
        pairs += [(contract.ARM_A, str(group))] if last >= split else []
    return pairs


class _Answer:
    """httptools callbacks collecting the candidate's answer, at most `limit` body bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            raise ValueError("the candidate's answer is too large")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True


class Experiment:
    """The assignment of one experiment, the forwarding of arm B, and the exposure counts and lines."""

    def __init__(self, cfg: ExperimentConfig, version: str, metrics: Metrics, *, timeout: float, limit: int) -> None:
        self.cfg = cfg
        self.header = cfg.header.lower().encode()
        self._version = version
        self._metrics = metrics
        self._timeout = timeout
        self._limit = limit
        self._forwarded = 0
        url = urlsplit(cfg.candidate_url)
        self._host = url.hostname or "localhost"
        self._port = url.port or 80
        self._prefix = url.path.rstrip("/")
        metrics.expect_exposures(groups(cfg.split), version, cfg.candidate_version)

    def assign(self, key: bytes | None) -> Assignment:
        return assign(self.cfg.experiment_id, self.cfg.split, key)

    def expose(self, assignment: Assignment, reply: Reply) -> Reply:
        """Count one answered request (and log it, with SLUICE_EXPOSURE_LOG); the reply, with its arm."""
        served = self.cfg.candidate_version if assignment.arm == contract.ARM_B else self._version
        self._metrics.expose(assignment.arm, assignment.group, served, reply.status)
        if self.cfg.exposure_log and assignment.key_hash is not None:
            log.info(
                "exposure",
                extra={"experiment": self.cfg.experiment_id, "key_hash": assignment.key_hash,
                       "bucket": assignment.bucket, "arm": assignment.arm, "version": served, "code": reply.status},
            )  # fmt: skip
        return reply._replace(headers=reply.headers + b"x-sluice-arm: " + assignment.arm.encode() + b"\r\n")

    async def forward(self, assignment: Assignment, path: str, body: bytes, header_length: bytes | None) -> Reply:
        """Arm B: the candidate's answer to the same request (not counted in this server's own request metrics:
        the candidate counts it), or 502/503/504 when it cannot be had."""
        if self._forwarded >= MAX_FORWARDED:
            return self.expose(assignment, error(503, "too many requests on their way to the candidate"))
        self._forwarded += 1
        try:
            reply = await asyncio.wait_for(self._exchange(path, body, header_length), self._timeout)
        except TimeoutError:
            reply = error(504, "the candidate did not answer within SLUICE_REQUEST_TIMEOUT")
        except (OSError, ValueError, httptools.HttpParserError):
            reply = error(502, "the candidate could not be reached or gave no valid answer")
        finally:
            self._forwarded -= 1
        return self.expose(assignment, reply)

    async def _exchange(self, path: str, body: bytes, header_length: bytes | None) -> Reply:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            content_type = b"application/octet-stream" if header_length is not None else JSON
            head = (
                f"POST {self._prefix}{path} HTTP/1.1\r\nhost: {self._host}\r\n".encode()
                + b"content-type: " + content_type + b"\r\n"
                + (b"inference-header-content-length: " + header_length + b"\r\n" if header_length else b"")
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            )  # fmt: skip
            writer.write(head + body)
            answer = _Answer(self._limit)
            parser = httptools.HttpResponseParser(answer)
            while not answer.complete:
                data = await reader.read(65536)
                if not data:
                    raise ValueError("the candidate closed the connection before its answer was complete")
                parser.feed_data(data)
            headers = b"".join(
                name + b": " + answer.headers[name] + b"\r\n" for name in _PASSED_ON if name in answer.headers
            )
            content_type = answer.headers.get(b"content-type", JSON)
            return Reply(parser.get_status_code(), b"".join(answer.body), content_type, None, headers)
        finally:
            writer.close()
