"""What the end-to-end modules share: `Deployed`, one ModelDeployment in its own namespace with its data plane and
the operator reconciling it; each module's scenario class adds the spec it creates and the changes it makes.

(The operator itself starts with `integration.operator_support.start_least_privileged_operator`.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from kubernetes import client
from kubernetes.client import ApiClient

from harness import wait_until
from harness.dataplane import DataPlane
from integration.operator_support import OperatorProcess, status_of
from sluice.api.v1alpha1 import GROUP, PLURAL, VERSION

TIMEOUT = 120.0
"""How long `Deployed.wait` waits by default."""


@dataclass
class Deployed:
    """One ModelDeployment `name` in `namespace`, with its data plane: its object and status as the API server
    has them, and waits that fail with the status, the operator's log and the data plane's errors."""

    api_client: ApiClient
    namespace: str
    operator: OperatorProcess
    dataplane: DataPlane
    custom: client.CustomObjectsApi = field(init=False)
    name: ClassVar[str] = "iris"
    """The same in every test: each has its own namespace."""

    def __post_init__(self) -> None:
        self.custom = client.CustomObjectsApi(self.api_client)

    def get(self) -> dict[str, Any]:
        return cast(
            dict[str, Any], self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        )

    def status(self) -> dict[str, Any]:
        return status_of(self.get())

    def diagnostics(self) -> str:
        return (
            f"--- status ---\n{self.status()}\n--- operator log ---\n{self.operator.log_tail(40)}\n"
            f"--- data plane errors ---\n{self.dataplane.errors}\n{self.dataplane.log_tails(8)}"
        )

    def wait(self, check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        """Until `check()`, polled every 0.2 s; then the operator must still be running."""
        try:
            wait_until(check, timeout=timeout, what=what, interval=0.2)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{self.diagnostics()}") from None
        assert self.operator.is_running(), self.operator.log_tail()
