"""The end of the twin's session (issue 11): ``lease.py down`` leaves nothing in the cloud, the
inventory is gone, and so are the host and its floating IP's DNAT. tests/run.sh deploy runs
this module last, after the other checks on the same host."""

from __future__ import annotations

import pytest

from tests.chameleon.session import INVENTORY, TwinHost, lease, timed

pytestmark = [pytest.mark.e2e, pytest.mark.testbed, pytest.mark.timeout(900)]


def test_down_leaves_nothing_and_the_host_is_gone(chameleon_twin: TwinHost) -> None:
    host, cloud = chameleon_twin, chameleon_twin.cloud
    with timed("lease.py down"):
        code, out = lease(cloud, host.student, "down")
        host.state["down"] = out
        assert code == 0, out
        cloud.wait_teardowns()
    assert not cloud.servers and not cloud.fips and not cloud.live_leases(), (cloud.servers, cloud.fips)
    assert not (host.student.repo / INVENTORY).exists()
    tb = host.state["tb"]
    assert host.lab not in {lab["lab"] for lab in tb.list_labs()}
    assert not tb.floating.load(cloud.floating_net).bindings
