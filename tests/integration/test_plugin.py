"""`kubectl-sluice` against the real local control plane, with the real operator reacting to what it writes.

Every command runs at least once: in-process through `sluice.cli.main.main` (the console script's function, with
the admin kubeconfig), and through the pinned `kubectl` as a plugin. The operator (`sluice-operator` subprocess)
has no reachable Prometheus and a 1 h check interval, so a rollout stays at its first step until the plugin moves
it: the states below are reached by the plugin's requests and the operator's real reactions to them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pexpect
import pyte
import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from harness import ControlPlane, wait_until
from harness.tools import find_tools
from integration.operator_support import OperatorProcess, status_of
from integration.sluice_crd import install_crd
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION
from sluice.cli.main import main

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
BIN = Path(sys.executable).parent


def model(version: str) -> dict[str, Any]:
    return {"version": version, "uri": f"https://models.example.com/fraud/{version}/model.onnx", "format": "onnx"}


SPEC = {
    "model": model("1.0.0"),
    "replicas": 1,
    "rollout": {"steps": [10, 50], "interval": "1h", "progressDeadline": "1h"},
}


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    install_crd(control_plane)
    workdir = tmp_path_factory.mktemp("plugin-operator")
    process = OperatorProcess(
        Path(control_plane.kubeconfig),
        workdir / "operator.log",
        {"SLUICE_RESYNC_SECONDS": "2", "SLUICE_PROMETHEUS_URL": "http://127.0.0.1:9"},
    ).start()
    yield process
    process.stop()


class Plugin:
    """Runs `kubectl-sluice` in-process against one namespace and reads objects with the admin client."""

    def __init__(
        self, control_plane: ControlPlane, api_client: ApiClient, namespace: str, operator: OperatorProcess
    ) -> None:
        self.kubeconfig = str(control_plane.kubeconfig)
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.operator = operator

    def __call__(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*args, "--kubeconfig", self.kubeconfig, "-n", self.namespace])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def create(self, name: str, spec: dict[str, Any] = SPEC) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def get(self, name: str) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        )

    def patch(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def wait(self, name: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        try:
            wait_until(lambda: check(status_of(self.get(name))), timeout=TIMEOUT, what=what, interval=0.3)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{status_of(self.get(name))}\n{self.operator.log_tail()}") from None
        return self.get(name)


@pytest.fixture
def plugin(
    control_plane: ControlPlane, kube_api_client: ApiClient, namespace: str, operator: OperatorProcess
) -> Plugin:
    return Plugin(control_plane, kube_api_client, namespace, operator)


def at_first_step(status: dict[str, Any]) -> bool:
    return status.get("phase") == "Progressing" and status.get("currentStep") == 0


def test_the_operator_warns_once_at_start_that_its_default_prometheus_does_not_answer(plugin: Plugin) -> None:
    warning = "the default Prometheus does not answer"
    wait_until(lambda: warning in plugin.operator.log_path.read_text(), timeout=TIMEOUT, what="the start check")
    plugin.create("fraud")
    plugin.wait("fraud", lambda s: s.get("phase") == "Stable", "Stable")  # the operator has gone on working
    log = plugin.operator.log_path.read_text()

    assert log.count(warning) == 1
    assert "cannot connect to Prometheus at http://127.0.0.1:9: set the operator's --prometheus-url" in log


def test_list_status_and_history_of_a_stable_deployment(plugin: Plugin, capsys: pytest.CaptureFixture[str]) -> None:
    plugin.create("fraud")

    code, out, _ = plugin(capsys, "status", "fraud", "--watch", "--timeout", "60", "--interval", "0.3")

    assert code == 0
    assert "Phase:         Stable   [Healthy]" in out.split("---")[-1]
    assert "Deployed" in out.split("Events:")[-1]
    code, out, _ = plugin(capsys, "list")
    assert code == 0
    assert out.splitlines()[1].split()[:4] == ["fraud", "Stable", "1.0.0", "-"]
    code, out, _ = plugin(capsys, "list", "-A")
    assert any(line.split()[:2] == [plugin.namespace, "fraud"] for line in out.splitlines())
    assert plugin(capsys, "list", "-o", "name")[1] == "modeldeployment.sluice.dev/fraud\n"
    code, out, _ = plugin(capsys, "list", "-o", "json")
    assert [item["metadata"]["name"] for item in json.loads(out)["items"]] == ["fraud"]
    assert yaml.safe_load(plugin(capsys, "status", "fraud", "-o", "yaml")[1])["status"]["phase"] == "Stable"
    code, out, _ = plugin(capsys, "history", "fraud")
    assert (code, out) == (0, "No finished rollouts of fraud yet (stable: 1.0.0).\n")


def test_unknown_objects_and_wrong_states_are_refused_without_writing(
    plugin: Plugin, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["status", "nope"], ["history", "nope"], ["promote", "nope"], ["undo", "nope"], ["pause", "nope"]):
        code, _, err = plugin(capsys, *command)
        assert (code, err) == (2, f'error: modeldeployment "nope" not found in namespace "{plugin.namespace}"\n')
    plugin.create("fraud")
    before = plugin.wait("fraud", lambda s: s.get("phase") == "Stable", "Stable")
    refused = {
        ("promote", "fraud"): "no rollout in progress (phase Stable); nothing to promote",
        ("promote", "fraud", "--full"): "no rollout in progress (phase Stable); nothing to promote",
        ("abort", "fraud"): "no rollout to abort (phase Stable)",
        ("retry", "fraud"): "nothing to retry: the last rollout was not rolled back or aborted (phase Stable)",
        ("undo", "fraud"): "no previous stable version recorded in the history of fraud (stable 1.0.0); "
        "use --to-version",
        ("undo", "fraud", "--to-version", "0.9.0"): "version 0.9.0 is not in the history "
        "(versions with a recorded model: none)",
    }
    for args, message in refused.items():
        assert plugin(capsys, *args) == (3, "", f"error: {message}\n"), args
    assert plugin(capsys, "resume", "fraud") == (0, "fraud: not paused; nothing changed\n", "")
    assert plugin.get("fraud")["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    capsys.readouterr()
    assert main(["list", "--kubeconfig", plugin.kubeconfig, "-n", "nowhere"]) == 0
    assert capsys.readouterr().out == "No ModelDeployments found in namespace nowhere.\n"


def test_a_rollout_steered_through_every_action(plugin: Plugin, capsys: pytest.CaptureFixture[str]) -> None:
    plugin.create("fraud")
    plugin.wait("fraud", lambda s: s.get("phase") == "Stable", "Stable")
    plugin.patch("fraud", {"spec": {"model": model("2.0.0")}})
    plugin.wait("fraud", at_first_step, "the canary at step 1")
    code, out, _ = plugin(capsys, "status", "fraud")
    assert code == 4
    assert "Weight:        [##..................] 10%" in out

    # pause and resume: the annotation, and the operator holding the rollout
    code, out, _ = plugin(capsys, "pause", "fraud")
    assert (code, out) == (0, "fraud: paused (sluice.dev/paused=true); the rollout of 2.0.0 holds at 10%\n")
    assert plugin.get("fraud")["metadata"]["annotations"]["sluice.dev/paused"] == "true"
    plugin.wait("fraud", lambda s: s.get("phase") == "Paused", "Paused")
    assert plugin(capsys, "status", "fraud")[0] == 4
    assert plugin(capsys, "pause", "fraud")[:2] == (
        0,
        "fraud: already paused by annotation sluice.dev/paused; nothing changed\n",
    )
    assert plugin(capsys, "promote", "fraud")[2] == (
        "error: the rollout of 2.0.0 is paused by annotation sluice.dev/paused; to promote: "
        f"`kubectl sluice resume fraud -n {plugin.namespace}`\n"
    )
    assert plugin(capsys, "resume", "fraud")[:2] == (0, "fraud: resumed (sluice.dev/paused removed)\n")
    assert "sluice.dev/paused" not in plugin.get("fraud")["metadata"].get("annotations", {})
    plugin.wait("fraud", at_first_step, "Progressing again")

    # promote: the action annotation with a fresh id, handled by the operator (--wait)
    code, out, _ = plugin(capsys, "promote", "fraud", "--wait")
    assert code == 0, out
    annotations = plugin.get("fraud")["metadata"]["annotations"]
    assert annotations["sluice.dev/action"] == "promote"
    assert annotations["sluice.dev/action-id"].startswith("kubectl-sluice-")
    assert status_of(plugin.get("fraud"))["lastHandledActionId"] == annotations["sluice.dev/action-id"]
    assert (status_of(plugin.get("fraud"))["currentStep"], status_of(plugin.get("fraud"))["canaryWeight"]) == (1, 50)

    # abort: rolled back; status exits 1, with and without --watch
    assert plugin(capsys, "abort", "fraud", "--wait")[0] == 0
    assert status_of(plugin.get("fraud"))["phase"] == "RolledBack"
    code, out, _ = plugin(capsys, "status", "fraud", "--watch", "--interval", "0.3")
    assert code == 1
    assert "[Degraded]" in out
    assert "RolloutAborted" in out

    # retry, then promote --full while status --watch waits for the end in another process
    assert plugin(capsys, "retry", "fraud", "--wait")[0] == 0
    plugin.wait("fraud", at_first_step, "the retried canary at step 1")
    watcher = subprocess.Popen(
        [BIN / "kubectl-sluice", "status", "fraud", "-w", "-t", "60", "--interval", "0.3", "-n", plugin.namespace],
        env={**os.environ, "KUBECONFIG": plugin.kubeconfig},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        assert watcher.poll() is None, "status --watch ended while the rollout was in progress"
        assert plugin(capsys, "promote", "fraud", "--full")[0] == 0
        out, _ = watcher.communicate(timeout=TIMEOUT)
    finally:
        watcher.kill()
        watcher.wait()
    assert watcher.returncode == 0, out
    assert "Phase:         Stable   [Healthy]" in out.split("---")[-1]
    assert "Progressing" in out.split("---")[0]

    code, out, _ = plugin(capsys, "history", "fraud")
    lines = out.splitlines()
    assert [line.split()[2:4] for line in lines[1:3]] == [["2.0.0", "Aborted"], ["2.0.0", "Promoted"]]
    assert "https://models.example.com/fraud/2.0.0/model.onnx (onnx)" in lines[2]

    # undo: spec.model back to the previous stable; the operator rolls it out as a canary
    code, out, _ = plugin(capsys, "undo", "fraud")
    assert (code, out) == (
        0,
        "fraud: spec.model set back to 1.0.0 (https://models.example.com/fraud/1.0.0/model.onnx): "
        "a canary rollout of 1.0.0 starts from stable 2.0.0\n",
    )
    assert plugin.get("fraud")["spec"]["model"] == model("1.0.0")
    plugin.wait("fraud", lambda s: s.get("canaryVersion") == "1.0.0", "a rollout of 1.0.0")
    # undo during that rollout returns to the stable 2.0.0 and ends it
    assert plugin(capsys, "undo", "fraud")[0] == 0
    assert plugin(capsys, "status", "fraud", "--watch", "--timeout", "60", "--interval", "0.3")[0] == 0
    final = status_of(plugin.get("fraud"))
    assert (final["stableVersion"], final["history"][-1]["reason"]) == ("2.0.0", "RevertedToStable")


def test_undo_returns_to_a_whole_revision_the_history_records(
    plugin: Plugin, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin.create("tuned", {**SPEC, "serving": {"env": [{"name": "OMP_NUM_THREADS", "value": "2"}]}})
    plugin.wait("tuned", lambda s: s.get("phase") == "Stable", "Stable")
    four_threads = {"image": "example.com/serving:2", "env": [{"name": "OMP_NUM_THREADS", "value": "4"}]}
    plugin.patch("tuned", {"spec": {"serving": four_threads}})
    plugin.wait("tuned", lambda s: (s.get("canaryRevision") or {}).get("number") == 2, "revision 2 rolling out")
    assert plugin(capsys, "promote", "tuned", "--full", "--wait")[0] == 0
    plugin.wait("tuned", lambda s: (s.get("stableRevision") or {}).get("number") == 2, "revision 2 stable")

    code, out, _ = plugin(capsys, "history", "tuned")
    assert code == 0
    assert "image default → example.com/serving:2, env OMP_NUM_THREADS changed" in out
    assert "stable now: 1.0.0 (revision 2)" in out
    code, out, _ = plugin(capsys, "undo", "tuned", "--to-revision", "1")

    assert (code, out) == (
        0,
        "tuned: spec.model and spec.serving set back to revision 1 (1.0.0): a canary rollout of it starts from "
        "stable revision 2\n",
    )
    assert plugin.get("tuned")["spec"]["serving"] == {"env": [{"name": "OMP_NUM_THREADS", "value": "2"}]}
    rolling = plugin.wait("tuned", lambda s: (s.get("canaryRevision") or {}).get("number") == 3, "revision 1 again")
    assert status_of(rolling)["canaryRevision"]["changes"] == (
        "image example.com/serving:2 → default, env OMP_NUM_THREADS changed"
    )
    assert plugin(capsys, "undo", "tuned", "--to-revision", "9")[0] == 3


def test_status_says_when_no_gateway_accepted_the_route(plugin: Plugin, capsys: pytest.CaptureFixture[str]) -> None:
    plugin.create("routed", {**SPEC, "traffic": {"gateway": {"parentRefs": [{"name": "nowhere"}]}}})
    plugin.wait("routed", lambda s: s.get("phase") == "Stable", "Stable")

    code, out, _ = plugin(capsys, "status", "routed")

    assert code == 0
    assert (
        "Route:         ✖ HTTPRoute routed not accepted by nowhere (no status from any parent: is there such a "
        "Gateway?): its weights move no traffic"
    ) in out


def test_status_of_an_invalid_spec_exits_1(plugin: Plugin, capsys: pytest.CaptureFixture[str]) -> None:
    resources = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    plugin.create("broken", {**SPEC, "serving": {"resources": resources}})

    code, out, _ = plugin(capsys, "status", "broken", "--watch", "--timeout", "60", "--interval", "0.3")

    assert code == 1
    assert "InvalidSpec" in out.split("---")[-1]
    assert "[Degraded]" in out.split("---")[-1]


def test_kubectl_runs_it_as_a_plugin_and_completes_through_it(
    plugin: Plugin, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin.create("fraud")
    kubectl = find_tools().binary("kubectl")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "KUBECONFIG": plugin.kubeconfig}

    listed = subprocess.run(
        [kubectl, "sluice", "list", "-n", plugin.namespace],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    completed = subprocess.run(
        [kubectl, "__complete", "sluice", "status", "-n", plugin.namespace, "fr"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    unknown = subprocess.run(
        [kubectl, "sluice", "status", "ghost", "-n", plugin.namespace],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].startswith("fraud")
    assert completed.stdout.splitlines()[:2] == ["fraud", ":4"], completed.stderr
    assert unknown.returncode == 2
    assert "not found" in unknown.stderr


def drain(child: pexpect.spawn[bytes], stream: pyte.ByteStream, seconds: float) -> None:
    """Feed everything the watch draws for `seconds` into the terminal emulator."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(pexpect.TIMEOUT):
            stream.feed(child.read_nonblocking(65536, timeout=0.2))


def screen_until(
    child: pexpect.spawn[bytes],
    screen: pyte.Screen,
    stream: pyte.ByteStream,
    drawn: Callable[[list[str]], bool],
    seconds: float = TIMEOUT,
) -> list[str]:
    """Feed what the watch draws into an 80x24 terminal emulator until its rows (as text) satisfy `drawn`."""
    deadline = time.monotonic() + seconds
    rows: list[str] = []
    while time.monotonic() < deadline:
        drain(child, stream, seconds=0.2)
        rows = [row.rstrip() for row in screen.display]
        if drawn(rows):
            return rows
    raise AssertionError("the watch never drew the expected screen; it shows:\n" + "\n".join(rows))


def watch_in_80_by_24(plugin: Plugin) -> tuple[pexpect.spawn[bytes], pyte.Screen, pyte.ByteStream]:
    """`kubectl-sluice status fraud --watch` in a pseudo-terminal of 80x24, and the emulator drawing its output."""
    screen = pyte.Screen(80, 24)
    child: pexpect.spawn[bytes] = pexpect.spawn(
        str(BIN / "kubectl-sluice"),
        ["status", "fraud", "-n", plugin.namespace, "--watch", "--interval", "0.3s"],
        env={**os.environ, "KUBECONFIG": plugin.kubeconfig, "TERM": "xterm"},
        dimensions=(24, 80),
    )
    return child, screen, pyte.ByteStream(screen)


def test_the_live_watch_fits_80_by_24_waits_for_the_object_and_for_a_rollout(plugin: Plugin) -> None:
    child, screen, stream = watch_in_80_by_24(plugin)
    try:
        rows = screen_until(child, screen, stream, lambda rows: rows[0] != "")
        assert rows[0].startswith(f'waiting for modeldeployment "fraud" in namespace "{plugin.namespace}" to be')
        plugin.create("fraud")
        child.expect(pexpect.EOF, timeout=TIMEOUT)  # the first deploy it waited for is done
    finally:
        child.close(force=True)
    assert child.exitstatus == 0

    child, screen, stream = watch_in_80_by_24(plugin)
    try:
        stable = f"fraud · {plugin.namespace} · Stable (Healthy)"
        rows = screen_until(child, screen, stream, lambda rows: rows[0].startswith(stable))
        assert rows[0].endswith("waiting for a rollout · Ctrl-C quits")
        time.sleep(1)
        assert child.isalive(), "a watch opened on a settled object waits for the next rollout"

        plugin.patch("fraud", {"spec": {"model": model("2.0.0")}})
        progressing = f"fraud · {plugin.namespace} · Progressing (Progressing)"
        rows = screen_until(child, screen, stream, lambda rows: rows[0].startswith(progressing) and "10%" in rows[2])
        for _ in range(3):  # the header stays on the first row however often it redraws
            drain(child, stream, seconds=1)
            rows = [row.rstrip() for row in screen.display]
            assert rows[0].startswith(progressing), rows
        # A read can end mid-frame (the rows below the header not yet redrawn): look at a whole frame.
        rows = screen_until(
            child,
            screen,
            stream,
            lambda rows: rows[0].startswith(progressing) and any(r.startswith("message ") for r in rows),
        )
        assert rows[1].startswith("model   2.0.0 (spec)   stable 1.0.0 1/1 ready   canary 2.0.0 1/1 ready")
        assert rows[2].startswith("traffic [##..................] 10% (actual 50%)   1/2 at 10%")
        assert rows[3].startswith("steps   ▸ 10%  · 50%")
        assert any(row.startswith("pods    ✔ fraud-") for row in rows)
        assert sum(row.startswith("message ") for row in rows) == 1
        assert rows[-1] == "", "the view leaves the last row free, so nothing scrolls"

        child.sendintr()
        child.expect(pexpect.EOF, timeout=10)
    finally:
        child.close(force=True)
    assert child.exitstatus == 130
