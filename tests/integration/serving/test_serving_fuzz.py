"""Issue #8 item 4 (serving half): generated malformed inference requests, as raw bytes over HTTP, against a
real server process. The server never answers 5xx, never dies, and keeps answering good requests meanwhile.

About 1,000 requests by default (seconds); `SLUICE_STRESS=1` sends ten times as many.
"""

from __future__ import annotations

import json
import os
import re
import socket
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration.serving.conftest import Serving
from integration.serving.test_serving_lifecycle import metric
from unit.serving.support import ModelFiles, rows_body

pytestmark = pytest.mark.integration

EXAMPLES = 10_000 if os.environ.get("SLUICE_STRESS") == "1" else 1_000
GOOD_EVERY = 10
PATHS = ("/v2/models/model/infer", "/v1/models/model:predict", "/v2/models/model/versions/3/infer")
STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")

# -- bodies ---------------------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)  # fmt: skip
FIELDS = ("inputs", "name", "shape", "datatype", "data", "data0", "outputs", "id", "parameters", "instances")


def good_doc(rows: int = 2) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": [rows, 20], "datatype": "FP64", "data": [0.25] * (rows * 20)}]}


@st.composite
def mutated_v2(draw: st.DrawFn) -> bytes:
    """A well-formed V2 document with one part replaced by an arbitrary JSON value."""
    doc = good_doc(draw(st.integers(1, 3)))
    tensor = doc["inputs"][0]
    field, value = draw(st.sampled_from(FIELDS)), draw(json_values)
    if field in ("inputs", "outputs", "id", "parameters", "instances"):
        doc[field] = value
    elif field == "data0":
        tensor["data"][0] = value
    else:
        tensor[field] = value
    return json.dumps(doc).encode()


RAW_NUMBERS = (b"1e400", b"-1e400", b"1" * 400, b"-" + b"9" * 30, b"18446744073709551616", b"1e-400", b"NaN",
               b"Infinity", b"0x10", b"01", b"1.", b".5", b"-")  # fmt: skip


@st.composite
def raw_number(draw: st.DrawFn) -> bytes:
    """A V2 or V1 body with a number JSON cannot (or can only barely) hold spliced in as text."""
    number = draw(st.sampled_from(RAW_NUMBERS))
    if draw(st.booleans()):
        return b'{"instances": [[' + b", ".join([number] * 20) + b"]]}"
    shape = draw(st.sampled_from([b"[1, 20]", b"[" + number + b", 20]", b"[1, " + number + b"]"]))
    return b'{"inputs": [{"name": "input", "datatype": "FP64", "shape": ' + shape + b', "data": [' + (
        b", ".join([number] * 20)) + b"]}]}"  # fmt: skip


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    body = json.dumps(good_doc()).encode()
    return body[: draw(st.integers(0, len(body) - 1))]


@st.composite
def bad_utf8(draw: st.DrawFn) -> bytes:
    body = json.dumps({"inputs": [{"name": "NAME", "shape": [1, 20], "datatype": "DT", "data": [0] * 20}]}).encode()
    junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\x00", b"\xe2\x82"]))
    return body.replace(draw(st.sampled_from([b"NAME", b"DT"])), junk)


v1_bodies = st.builds(lambda v: json.dumps({"instances": v}).encode(), json_values)
bodies = (
    mutated_v2()
    | raw_number()
    | truncated()
    | bad_utf8()
    | v1_bodies
    | st.builds(lambda v: json.dumps(v).encode(), json_values)
    | st.binary(max_size=200)
)

# -- framing --------------------------------------------------------------------------------------------------


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    body = draw(bodies)
    path = draw(st.sampled_from(PATHS)).encode()
    kind = draw(st.sampled_from(("framed", "framed", "framed", "length", "chunked", "headers", "line", "bytes")))
    head = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if kind == "framed":
        return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    if kind == "length":  # a Content-Length that lies, or is not a number
        length = draw(st.sampled_from([b"-1", b"abc", b"1e3", b"99999999999999999999", b"", b" 5"])
                      | st.integers(0, len(body) + 10).map(lambda n: str(n).encode()))  # fmt: skip
        return head + b"Content-Length: " + length + b"\r\n\r\n" + body
    if kind == "chunked":  # chunks, some with wrong or malformed sizes, maybe no terminating chunk
        out = head + b"Transfer-Encoding: chunked\r\n\r\n"
        for piece in (body[:7], body[7:]):
            size = draw(st.sampled_from([b"%x" % len(piece), b"%x" % (len(piece) + 1), b"zz", b"-1", b""]))
            out += size + b"\r\n" + piece + b"\r\n"
        return out + draw(st.sampled_from([b"0\r\n\r\n", b"", b"0\r\n"]))
    if kind == "headers":  # header lines that are not headers
        junk = draw(st.binary(min_size=1, max_size=60))
        return head + junk + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    if kind == "line":  # a broken request line
        method = draw(st.sampled_from([b"POST", b"P0ST", b"", b"GET", b"CONNECT", b"POST POST"]))
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/9.9", b"HTTP/1", b"", b"FTP/1.0"]))
        target = draw(st.sampled_from([path, b"", b"*", b"//..//", path + b"?" + draw(st.binary(max_size=20))]))
        return method + b" " + target + b" " + version + b"\r\nContent-Length: " + str(len(body)).encode() + (
            b"\r\n\r\n" + body)  # fmt: skip
    return draw(st.binary(min_size=1, max_size=300))


def exchange(port: int, request: bytes) -> bytes:
    """Send `request`, end the sending side, and read until the server closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server refused early (e.g. 413) and closed
        reply = b""
        try:
            while chunk := sock.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass
        return reply


@pytest.fixture(scope="module")
def good_client(sklearn_server: Serving) -> httpx.Client:
    return httpx.Client(base_url=sklearn_server.base, timeout=30)


def test_malformed_requests_never_get_a_5xx_and_good_requests_keep_working(
    sklearn_server: Serving, classifier: ModelFiles, good_client: httpx.Client
) -> None:
    good = rows_body(classifier.rows)
    sent = {"malformed": 0, "good": 0}
    statuses: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(request=requests())
    def one(request: bytes) -> None:
        reply = exchange(sklearn_server.port, request)
        codes = [int(code) for code in STATUS.findall(reply)]
        for code in codes:
            statuses[code] = statuses.get(code, 0) + 1
        assert all(code < 500 for code in codes), (request, reply)
        assert sklearn_server.proc.poll() is None, sklearn_server.stderr()[-3000:]
        sent["malformed"] += 1
        if sent["malformed"] % GOOD_EVERY == 0:
            response = good_client.post(PATHS[0], content=good)
            assert response.status_code == 200, response.text
            assert response.json()["outputs"][0]["data"] == classifier.expected
            sent["good"] += 1

    one()
    assert sent["malformed"] >= EXAMPLES * 0.9, sent  # hypothesis may stop a little early on duplicates
    assert statuses.get(400, 0) > sent["malformed"] / 2, statuses  # most are refused as bad requests
    assert statuses.get(200, 0) > 0, statuses  # a few mutations are still valid requests
    assert sent["good"] >= sent["malformed"] // GOOD_EVERY
    for code in (500, 503):
        with pytest.raises(AssertionError):
            metric(sklearn_server, "sluice_serving_requests_total", endpoint="infer", code=str(code))
    assert sklearn_server.client.get("/v2/health/ready").status_code == 200
