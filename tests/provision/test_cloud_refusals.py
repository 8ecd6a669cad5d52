"""lease.py against upstream Blazar/Neutron refusals, on the stateful fake KVM@TACC.

Extend on a flavor lease (409, then the lease is ERROR while its reservation and server stay active),
Blazar's usage enforcement, Neutron's security-group quota and an empty floating-IP pool, the reserved
flavor found by its extra spec, HTTP timeouts, SSH before the inventory, and the documented exit codes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openstack import FakeKvmTacc

from provision import chameleon as ch

SERVER = "lab-4-data-platform-abc123"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "chameleon.md"


def writes(fake: FakeKvmTacc) -> list[str]:
    return [f"{m} {p}" for m, p in fake.history if m != "GET" and not p.endswith("/auth/tokens")]


def the_server(fake: FakeKvmTacc) -> dict[str, Any]:
    (server,) = [s for s in fake.servers.values() if s["name"] == SERVER]
    return server


def advises_down(text: str) -> bool:
    """True when the text tells the user to run `down` (mentioning it in a warning is fine)."""
    return bool(re.search(r"(?i)\brun `(lease\.py )?down`", text)) and "not run `down`" not in text


# ------------------------------------------------------------------------------------------ extend
def test_extend_on_a_flavor_lease_is_refused_and_the_server_keeps_running(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    (lease,) = fake.live_leases()
    end = lease["end_date"]
    server_id = the_server(fake)["id"]

    r = run("extend", "--hours", "2")
    assert r.code == 12 and r.out["error"]["kind"] == "extend-unsupported"
    assert "HTTP 409" in r.err and "not yet supported" in r.err
    assert "marked the lease ERROR" in r.err and "reservation is active" in r.err
    assert "keeps running until the original end" in r.err and "Do NOT run `down`" in r.err
    # upstream: the lease is ERROR, the reservation and the server are untouched
    assert lease["status"] == "ERROR" and lease["end_date"] == end
    assert lease["reservations"][0]["status"] == "active"
    assert the_server(fake)["status"] == "ACTIVE"

    # status: still ready, and it says why the ERROR is harmless; never advises `down`
    r = run("status")
    assert r.code == 0, r.err
    assert r.out["ready"] is True and r.out["lease"]["status"] == "ERROR" and r.out["lease"]["usable"] is True
    assert "Do not run `down`" in r.out["advice"] and not advises_down(r.out["advice"])
    human = run("status", as_json=False)
    assert human.code == 0 and not advises_down(human.out["text"])

    # up: nothing to do, nothing deleted, the same note
    fake.history.clear()
    r = run("up")
    assert r.code == 0, r.err
    assert r.out["changes"] == [] and writes(fake) == []
    assert any("Do not run `down`" in n for n in r.out["notes"])
    assert the_server(fake)["id"] == server_id

    # the user may still remove it all (ERROR -> DELETING is a valid Blazar transition)
    assert run("down").code == 0
    assert fake.leases == {} and fake.servers == {} and fake.fips == {}


def test_failed_lease_with_a_running_server_never_advises_down(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    (lease,) = fake.live_leases()
    lease["status"] = "ERROR"
    lease["reservations"][0]["status"] = "error"  # really broken this time

    r = run("up")
    assert r.code == 7
    assert "is ERROR" in r.err and "still ACTIVE" in r.err and "keep using it" in r.err
    assert not advises_down(r.err)
    r = run("status")
    assert r.code == ch.EXIT_NOT_READY and r.out["lease"]["usable"] is False
    assert not advises_down(r.out["advice"]) and "still ACTIVE" in r.out["advice"]
    assert the_server(fake)["status"] == "ACTIVE"
    # without a server the advice is `down`, then `up`
    fake.vanish_server(the_server(fake)["id"])
    r = run("status")
    assert advises_down(r.out["advice"])


# ------------------------------------------------------------------------------------------ enforcement
ENFORCEMENT = {
    "max-duration": ("max_lease_seconds", 3 * 3600, "maximum lease duration of 10800 seconds"),
    "allocation": ("allocation_denial", "Your project's allocation has no service units left.", "service units"),
}


@pytest.mark.parametrize("status", [400, 403], ids=["upstream-400", "service-403"])
@pytest.mark.parametrize("case", list(ENFORCEMENT))
def test_blazar_enforcement_is_a_lease_policy_refusal(fake: FakeKvmTacc, run: Any, case: str, status: int) -> None:
    knob, value, text = ENFORCEMENT[case]
    setattr(fake, knob, value)
    fake.enforcement_status = status
    r = run("up")
    assert r.code == 9 and r.out["error"]["kind"] == "lease-policy"
    assert text in r.err and "Your credential is fine" in r.err
    assert "rejected the application credential" not in r.err
    assert fake.leases == {} and fake.servers == {}
    setattr(fake, knob, None)
    assert run("up").code == 0


def test_enforcement_on_extend_keeps_the_lease(fake: FakeKvmTacc, run: Any) -> None:
    fake.extend_allowed = True  # a deployment that can update flavor leases
    assert run("up").code == 0
    fake.max_lease_seconds = 5 * 3600
    r = run("extend", "--hours", "2")
    assert r.code == 9 and "maximum lease duration" in r.err and "still ends at" in r.err
    (lease,) = fake.live_leases()
    assert lease["status"] == "ACTIVE"  # enforcement refusals are non-fatal upstream


@pytest.mark.parametrize("message", ["Policy doesn't allow blazar:leases:post to be performed.", "Not authorized"])
def test_credential_problems_keep_their_own_code(fake: FakeKvmTacc, run: Any, message: str) -> None:
    fake.lease_create_error = (403, message)
    r = run("up")
    assert r.code == 3 and r.out["error"]["kind"] == "auth" and "Unrestricted" in r.err
    fake.lease_create_error = None
    fake.expired_credential = True
    r = run("up")
    assert r.code == 3 and "rejected the application credential" in r.err


# ------------------------------------------------------------------------------------------ Neutron quotas
def test_security_group_quota_stops_before_the_lease_and_a_rerun_finishes(fake: FakeKvmTacc, run: Any) -> None:
    # a shared course project: teammates' groups use the quota (Neutron's default is 10)
    theirs = fake.add_security_group("teammate-jupyter", 8888)
    fake.add_security_group("teammate-web", 80)
    assert fake.security_group_quota == 10
    r = run("up")
    assert r.code == 10 and r.out["error"]["kind"] == "quota"
    assert "security-group quota is used up" in r.err and "['security_group']" in r.err
    assert "still needs 2: allow-3000, allow-8888" in r.err
    unused = r.err.split("Groups no port uses: ")[1].split(". ")[0]
    assert unused.startswith(f"teammate-jupyter ({theirs}), teammate-web (")  # candidates to delete
    assert "allow-" not in unused  # the lab's own groups are needed, not candidates
    assert "re-run it when there is room" in r.err
    assert fake.leases == {} and fake.servers == {}  # stopped before the lease
    made = {g["name"] for g in fake.security_groups.values()}

    # a re-run while the project is still full creates nothing twice
    fake.history.clear()
    r = run("up")
    assert r.code == 10
    assert [w for w in writes(fake) if "security-group-rules" not in w] == ["POST /v2.0/security-groups"]
    assert {g["name"] for g in fake.security_groups.values()} == made

    fake.security_group_quota = 12  # the course staff raised it
    r = run("up")
    assert r.code == 0, r.err
    for name in ch.SECURITY_GROUPS:
        assert len(fake.groups_named(name)) == 1, name
    assert len(fake.live_leases()) == 1 and len(fake.servers) == 1


def test_empty_floating_ip_pool_keeps_the_server_and_a_rerun_finishes(fake: FakeKvmTacc, run: Any) -> None:
    fake.floating_ip_pool_size = 0
    r = run("up")
    assert r.code == 11 and r.out["error"]["kind"] == "no-floating-ip"
    assert "No more IP addresses available on network" in r.err and "is ACTIVE and kept" in r.err
    assert not run.inventory.exists()
    server_id = the_server(fake)["id"]
    assert run("up").code == 11 and the_server(fake)["id"] == server_id and len(fake.servers) == 1

    fake.floating_ip_pool_size = None  # someone released an address
    r = run("up")
    assert r.code == 0, r.err
    assert the_server(fake)["id"] == server_id and len(fake.fips) == 1
    assert run.inventory.exists()


@pytest.mark.parametrize(
    "knob, limit, text",
    [
        ("security_group_rule_quota", 5, "security-group-rule quota is used up"),
        ("floating_ip_quota", 0, "floating-IP quota is used up"),
    ],
)
def test_other_neutron_quotas_have_the_quota_code_and_a_rerun_finishes(
    fake: FakeKvmTacc, run: Any, knob: str, limit: int, text: str
) -> None:
    setattr(fake, knob, limit)
    r = run("up")
    assert r.code == 10 and text in r.err and "re-run `up`" in r.err.lower()
    setattr(fake, knob, None)
    r = run("up")
    assert r.code == 0, r.err
    assert (len(fake.live_leases()), len(fake.servers), len(fake.fips)) == (1, 1, 1)
    for name in ch.SECURITY_GROUPS:
        assert len(fake.groups_named(name)) == 1, name


# ------------------------------------------------------------------------------------------ flavor, HTTP
def test_reserved_flavor_found_by_extra_spec_when_its_id_differs(fake: FakeKvmTacc, run: Any) -> None:
    fake.reserved_flavor_id_is_reservation_id = False
    r = run("up")
    assert r.code == 0, r.err
    (lease,) = fake.live_leases()
    rid = lease["reservations"][0]["id"]
    flavor = fake.reserved_flavor(rid)
    assert flavor is not None and flavor["id"] != rid
    (post,) = [q for q in fake.mocker.request_history if q.method == "POST" and q.path == "/v2.1/servers"]
    assert post.json()["server"]["flavorRef"] == flavor["id"]
    assert ("GET", f"/v2.1/flavors/{rid}") in fake.history  # by id first (404), then the extra spec
    assert "found by its extra spec" in r.err


@pytest.mark.parametrize("argv, expected", [((), ch.HTTP_TIMEOUT), (("--http-timeout", "7"), 7.0)])
def test_every_http_call_has_a_timeout(fake: FakeKvmTacc, run: Any, argv: tuple[str, ...], expected: float) -> None:
    assert run("up", *argv).code == 0
    assert run("status", *argv).code == 0
    assert run("down", *argv).code == 0
    history = fake.mocker.request_history
    assert {q.path for q in history} >= {"/v3/auth/tokens", "/v1/leases", "/v2.1/servers", "/v2.0/floatingips"}
    untimed = [f"{q.method} {q.path}" for q in history if q.timeout != expected]
    assert untimed == []


# ------------------------------------------------------------------------------------------ SSH, inventory
def test_inventory_is_written_only_after_ssh_answers(fake: FakeKvmTacc, run: Any) -> None:
    run.sshd.answering = False  # sshd not up yet: the port accepts but no banner comes
    r = run("up", "--ssh-timeout", "30")
    assert r.code == 5
    assert "SSH on" in r.err and "not answering after 30s" in r.err and "inventory is not written" in r.err
    assert not run.inventory.exists()
    fip = next(iter(fake.fips.values()))["floating_ip_address"]
    assert set(run.sshd.probed) == {(fip, 22)}

    run.sshd.answering = True
    r = run("up")
    assert r.code == 0, r.err
    assert r.out["changes"] == [f"wrote inventory {run.inventory}"]
    host = yaml.safe_load(run.inventory.read_text())["all"]["hosts"][SERVER]
    assert host["ansible_host"] == fip
    assert host["gourmetgram_private_address"] == r.out["private_address"] != fip


def test_ssh_probe_reads_the_banner_on_loopback(sshd: Any) -> None:
    from provision.chameleon.inventory import ssh_answers

    assert ssh_answers("127.0.0.1", sshd.port, 2.0) is True
    sshd.answering = False
    assert ssh_answers("127.0.0.1", sshd.port, 2.0) is False
    sshd.close()
    assert ssh_answers("127.0.0.1", sshd.port, 2.0) is False


# ------------------------------------------------------------------------------------------ exit codes
def test_exit_codes_are_distinct_and_documented(capsys: pytest.CaptureFixture[str]) -> None:
    codes = ch.EXIT_CODES
    assert len(set(codes.values())) == len(codes)
    documented = dict(re.findall(r"^\| (\d+) \| `([a-z-]+)`", DOCS.read_text(), re.MULTILINE))
    assert {kind: code for code, kind in documented.items() if kind in codes} == {
        kind: str(code) for kind, code in codes.items()
    }
    assert {str(ch.EXIT_NOT_READY), str(ch.EXIT_INTERRUPTED)} <= set(documented)
    for code in [*codes.values(), ch.EXIT_NOT_READY, ch.EXIT_INTERRUPTED]:
        assert re.search(rf"^  {code} ", ch.EXIT_CODES_HELP, re.MULTILINE), code


def test_fake_tests_cannot_reach_the_fake_floating_ips(fake: FakeKvmTacc) -> None:
    """The guard of the `fake` fixture refuses before any packet leaves (192.0.2.0/24 is TEST-NET-1)."""
    import socket

    with pytest.raises(AssertionError, match="only loopback"):
        socket.create_connection(("192.0.2.1", 22), timeout=1)
