"""Fixtures of the integration tests (the control plane and namespaces come from tests/conftest.py).

Add fixtures here; keep each block's section comment so several engineers can extend this file.
"""

from __future__ import annotations

# --- The Helm chart and its ServiceAccount: `chart_install` and `operator_kubeconfig` live in tests/conftest.py ---
# (shared with tests/e2e).
