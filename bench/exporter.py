"""A synthetic `sluice_serving_*` exporter for the concurrent-rollouts benchmark (`bench/run.py --only rollouts`).

Hundreds of real model servers do not fit on the benchmark machine, so this one process serves, in the model
server's own metric families and labels, the series of every stable and canary of the benchmark's
ModelDeployments: `sluice_serving_requests_total{model,version,track,endpoint,code}` and
`sluice_serving_request_duration_seconds_bucket{...,le}`, as counters growing at a steady rate from the process
start. The real Prometheus scrapes it (one target, labelled with the namespace) and the operator reads it with its
real PromQL. `POST /breach` makes the canaries of the names given with `--bad` fail half their requests from that
moment on; it answers the moment (epoch seconds).

    python bench/exporter.py --port 9100 --names names.txt --bad bad.txt --stable 1.0.0 --canary 2.0.0 --rate 5
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sluice import contract

REQUESTS = f"{contract.REQUESTS}_total"
DURATION = contract.REQUEST_DURATION_SECONDS

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LATENCY_SECONDS = 0.004
"""Every synthetic request takes 4 ms: all in the first bucket."""
BAD_ERROR_FRACTION = 0.5


class Series:
    """Counter values as functions of time: `rate` requests/s per (model, track) since `started`."""

    def __init__(self, names: list[str], bad: set[str], versions: dict[str, str], rate: float) -> None:
        self.names = names
        self.bad = bad
        self.versions = versions
        self.rate = rate
        self.started = time.time()
        self.breach_at: float | None = None
        self._lock = threading.Lock()

    def breach(self) -> float:
        with self._lock:
            if self.breach_at is None:
                self.breach_at = time.time()
            return self.breach_at

    def render(self) -> bytes:
        now = time.time()
        total = self.rate * (now - self.started)
        with self._lock:
            breach_at = self.breach_at
        failing = 0.0 if breach_at is None else BAD_ERROR_FRACTION * self.rate * max(0.0, now - breach_at)
        lines = [
            f"# TYPE {REQUESTS} counter",
            f"# TYPE {DURATION} histogram",
        ]
        for name in self.names:
            for track, version in self.versions.items():
                base = (
                    f'{contract.LABEL_MODEL}="{name}",{contract.LABEL_VERSION}="{version}",'
                    f'{contract.LABEL_TRACK}="{track}",{contract.LABEL_ENDPOINT}="infer"'
                )
                errors = failing if track == contract.TRACK_CANARY and name in self.bad else 0.0
                lines.append(f'{REQUESTS}{{{base},{contract.LABEL_CODE}="200"}} {total - errors:.3f}')
                if errors:
                    lines.append(f'{REQUESTS}{{{base},{contract.LABEL_CODE}="500"}} {errors:.3f}')
                for bound in BOUNDS:
                    value = total if bound >= LATENCY_SECONDS else 0.0
                    lines.append(f'{DURATION}_bucket{{{base},le="{bound}"}} {value:.3f}')
                lines.append(f'{DURATION}_bucket{{{base},le="+Inf"}} {total:.3f}')
                lines.append(f"{DURATION}_count{{{base}}} {total:.3f}")
                lines.append(f"{DURATION}_sum{{{base}}} {total * LATENCY_SECONDS:.3f}")
        return ("\n".join(lines) + "\n").encode()


def handler_for(series: Series) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = series.render() if self.path.startswith("/metrics") else b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if self.path != "/breach":
                self.send_error(404)
                return
            body = f"{series.breach():.3f}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--names", type=Path, required=True, help="file with one ModelDeployment name per line")
    parser.add_argument("--bad", type=Path, required=True, help="names whose canary fails after POST /breach")
    parser.add_argument("--stable", default="1.0.0")
    parser.add_argument("--canary", default="2.0.0")
    parser.add_argument("--rate", type=float, default=5.0, help="requests/s per stable and per canary")
    args = parser.parse_args()
    names = args.names.read_text().split()
    bad = set(args.bad.read_text().split())
    series = Series(names, bad, {contract.TRACK_STABLE: args.stable, contract.TRACK_CANARY: args.canary}, args.rate)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(series))
    server.serve_forever()


if __name__ == "__main__":
    main()
