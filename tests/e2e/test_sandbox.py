"""The README's default bring-up, the local sandbox (``provision/platform.sh up`` with no
inventory), proven beside the lab on the Chameleon twin (tests/run.sh deploy): test_lab's step 6
starts it in the background (tests/deployed.py BackgroundBringUp), and this module, run after the
lab, finds it up as the guide's step 3 describes, with the API, Airflow and every UI answering on
the sandbox's address, then ``platform.sh down`` removes it.

    sudo $GG_CACHE/venv/bin/pytest -s tests/e2e/test_sandbox.py   # on its own: bring-up, checks, down
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.chameleon.test_twin import UI_URLS, _get
from tests.deployed import LAB, ROOT, BackgroundBringUp, Sandbox, log
from tests.e2e.test_lab import step3_checks

pytestmark = [pytest.mark.e2e, pytest.mark.testbed, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def sandbox_host(sandbox_bring_up: BackgroundBringUp) -> Sandbox:
    return sandbox_bring_up.wait(timeout=3000)


def test_sandbox_bring_up_prints_the_addresses_and_every_unit_runs(sandbox_host: Sandbox) -> None:
    assert sandbox_host.bring_up == "provision/platform.sh up"
    step3_checks(sandbox_host)


def test_api_airflow_and_every_ui_answer_on_the_sandbox_address(sandbox_host: Sandbox) -> None:
    addr = sandbox_host.address
    code, body = _get(f"http://{addr}:8000/health")
    assert code == 200 and json.loads(body)["status"] == "healthy", body
    code, body = _get(f"http://{addr}:8080/api/v2/monitor/health")
    assert code == 200 and json.loads(body)["scheduler"]["status"] == "healthy", body
    answers = {name: _get(f"http://{addr}{path}")[0] for name, path in UI_URLS.items()}
    assert all(code in (200, 302, 401) for code in answers.values()), answers
    log(f"sandbox {sandbox_host.host} ({addr}): {answers}")


def test_down_removes_the_sandbox(sandbox_host: Sandbox) -> None:
    sandbox_host.command("down", label="sandbox down")
    listed = subprocess.run(
        [sys.executable, str(ROOT / "ansible/testbed/testbed.py"), "list"], capture_output=True, text=True, check=True
    ).stdout
    assert LAB not in {lab["lab"] for lab in json.loads(listed)}, listed
    assert not sandbox_host.inventory.exists()
