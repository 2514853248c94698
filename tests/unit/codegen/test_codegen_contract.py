"""The names operator and model server share (sluice/contract.py) and the server's generated copy of them."""

from __future__ import annotations

import ast

from harness.tools import REPO_ROOT
from sluice import contract
from sluice.codegen.contract import VENDORED_PATH, render_vendored
from sluice.core.workloads import RESERVED_ENV
from sluice_serving import contract as served_contract
from sluice_serving.config import SETTINGS


def test_the_model_servers_copy_of_the_contract_is_current() -> None:
    assert (REPO_ROOT / VENDORED_PATH).read_text() == render_vendored(), f"{VENDORED_PATH} is stale: run `make crds`"


def test_both_packages_see_the_same_names() -> None:
    public = {name: value for name, value in vars(contract).items() if name.isupper()}
    assert public == {name: value for name, value in vars(served_contract).items() if name.isupper()}


def test_the_contract_imports_nothing_so_either_package_installs_alone() -> None:
    tree = ast.parse((REPO_ROOT / VENDORED_PATH).read_text())
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def test_every_variable_the_operator_sets_is_one_the_model_server_reads() -> None:
    assert {setting.env for setting in SETTINGS} >= RESERVED_ENV
