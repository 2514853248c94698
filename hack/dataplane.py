"""Model servers and traffic for the `make cluster-up` cluster, so a rollout there has metrics to judge.

kwok's pods run nothing, so this stands in for the serving pods of one namespace (tests/harness/dataplane.py): a
real `sluice-serving` process per Ready sluice pod, scraped by cluster-up's Prometheus, and requests to the
ModelDeployment split the way the cluster would. It writes the model the README's first rollout serves
(`.local/models/classifier.onnx`) and runs until Ctrl-C or SIGTERM, then stops what it started by PID.

    make dataplane                              # namespace ml, ModelDeployment iris, 20 requests/s
    make dataplane DATAPLANE_ARGS="--namespace team-a --name fraud"
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness import Prometheus, new_api_client  # noqa: E402
from harness.dataplane import DataPlane, LoadGenerator  # noqa: E402
from unit.serving.support import make_classifier, rows_body  # noqa: E402

LOCAL = REPO / ".local"
RUN_SECONDS = 24 * 3600.0
"""How long the traffic lasts at most: a day (the load generator always has a bound)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", default="ml", help="the namespace whose sluice pods get servers (default ml)")
    parser.add_argument("--name", default="iris", help="the ModelDeployment to send requests to (default iris)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    args = parser.parse_args()
    state = LOCAL / "state.json"
    if not state.exists():
        print("no local cluster: run `make cluster-up` first", file=sys.stderr)
        return 2
    prometheus = Prometheus.from_json(json.loads(state.read_text())["prometheus"])
    model = make_classifier(LOCAL / "models")
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with (
        new_api_client(LOCAL / "kubeconfig") as api_client,
        DataPlane(api_client, prometheus, args.namespace, LOCAL / "dataplane") as dataplane,
        LoadGenerator(
            dataplane, args.name, rows_body(model.rows[:1], "FP32"), rate=args.rate, duration=RUN_SECONDS
        ) as load,
    ):
        print(
            f"model {model.onnx}; serving the sluice pods of namespace {args.namespace} and sending {args.rate:g} "
            f"requests/s to {args.name}; Ctrl-C stops",
            flush=True,
        )
        while not stopping.wait(60):
            print(f"requests answered so far, by (version, code): {dict(load.stats.by_version)}", flush=True)
    print("stopped the model servers", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
