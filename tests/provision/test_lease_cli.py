"""provision/lease.py against the stateful fake KVM@TACC (real keystoneauth + openstacksdk, offline)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_openstack import (
    APP_CRED_SECRET,
    DEFAULT_SG_ID,
    PROJECT_ID,
    SHARED_NET_ID,
    TEAMMATE_ID,
    FakeKvmTacc,
)

from provision import chameleon as ch

SERVER = "lab-4-data-platform-abc123"
GROUPS = list(ch.SECURITY_GROUPS)


# ------------------------------------------------------------------------------------------ helpers
def writes(fake: FakeKvmTacc) -> list[str]:
    """Every non-GET request except getting a token."""
    return [f"{m} {p}" for m, p in fake.history if m != "GET" and not p.endswith("/auth/tokens")]


def reset_history(fake: FakeKvmTacc) -> None:
    fake.history.clear()


def my_servers(fake: FakeKvmTacc) -> list[dict[str, Any]]:
    return [s for s in fake.servers.values() if s["name"] == SERVER]


def assert_complete(fake: FakeKvmTacc, inventory: Path) -> None:
    """Exactly one of everything, all wired together."""
    (lease,) = fake.live_leases()
    assert lease["status"] == "ACTIVE"
    (server,) = my_servers(fake)
    assert server["status"] == "ACTIVE"
    assert server["_reservation_id"] == lease["reservations"][0]["id"]
    (port,) = [p for p in fake.ports.values() if p["device_id"] == server["id"]]
    for name, tcp in ch.SECURITY_GROUPS.items():
        (group,) = fake.groups_named(name)
        assert group["id"] in port["security_groups"], name
        ingress = [r for r in fake.rules_of(group["id"]) if r["direction"] == "ingress"]
        assert [(r["port_range_min"], r["port_range_max"]) for r in ingress] == [(tcp, tcp)], name
    mine = [f for f in fake.fips.values() if f["description"] == f"{SERVER} (provision/lease.py)"]
    (fip,) = mine
    assert fip["port_id"] == port["id"]
    inv = yaml.safe_load(inventory.read_text())
    host = inv["all"]["hosts"][SERVER]
    assert host["ansible_host"] == fip["floating_ip_address"]
    # services bind the address on the VM's interface (the port's fixed IP), never the NAT'd floating IP
    assert host["gourmetgram_private_address"] == port["fixed_ips"][0]["ip_address"] == fip["fixed_ip_address"]


# ------------------------------------------------------------------------------------------ up
def test_fresh_up_creates_everything(fake: FakeKvmTacc, run: Any) -> None:
    r = run("up")
    assert r.code == 0, r.err
    assert r.out["changed"] is True
    assert_complete(fake, run.inventory)
    # the lease request Blazar got: m1.xlarge (id 5), one slot, affinity null, 4 h from now in UTC minutes
    (post,) = [q for q in fake.mocker.request_history if q.method == "POST" and q.path == "/v1/leases"]
    body = post.json()
    assert body["name"] == "lab-4-data-platform"
    assert body["start_date"] == "now"
    assert body["reservations"] == [
        {"resource_type": "flavor:instance", "flavor_id": "5", "amount": 1, "affinity": None}
    ]
    end = dt.datetime.strptime(body["end_date"], "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
    assert abs((end - dt.datetime.now(dt.UTC)).total_seconds() - 4 * 3600) < 120
    # the server boots on the reserved flavor, on sharednet1, with the key pair
    (srv_post,) = [q for q in fake.mocker.request_history if q.method == "POST" and q.path == "/v2.1/servers"]
    server_req = srv_post.json()["server"]
    assert server_req["flavorRef"] == fake.live_leases()[0]["reservations"][0]["id"]
    assert server_req["networks"] == [{"uuid": SHARED_NET_ID}]
    assert server_req["key_name"] == "mykey"
    # progress on the waits, on stderr; no secret anywhere
    assert "waiting for lease lab-4-data-platform: PENDING (0s elapsed, timeout 900s)" in r.err
    assert "waiting for server lab-4-data-platform-abc123: BUILD" in r.err
    assert APP_CRED_SECRET not in r.err + json.dumps(r.out)
    assert APP_CRED_SECRET not in run.inventory.read_text()


def test_second_up_is_a_noop_and_says_so(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    before = run.inventory.stat().st_mtime_ns
    reset_history(fake)
    r = run("up", as_json=False)
    assert r.code == 0, r.err
    assert r.out["text"].startswith("Nothing to do: everything is already in place.")
    assert writes(fake) == []
    assert run.inventory.stat().st_mtime_ns == before
    assert_complete(fake, run.inventory)
    r = run("up")
    assert r.out["changed"] is False and r.out["changes"] == []


@pytest.mark.parametrize("stage", ch.UP_STAGES)
def test_up_after_ctrl_c_at_each_stage_completes_without_duplicates(fake: FakeKvmTacc, run: Any, stage: str) -> None:
    def crash(done: str) -> None:
        if done == stage:
            raise KeyboardInterrupt

    r = run("up", stage_hook=crash)
    assert r.code == ch.EXIT_INTERRUPTED
    assert f"interrupted after stage {stage!r}" in r.err
    r = run("up")
    assert r.code == 0, r.err
    assert_complete(fake, run.inventory)
    assert len(fake.leases) == 1
    assert len(fake.servers) == 1
    assert len(fake.fips) == 1


@pytest.mark.parametrize("stage", ch.UP_STAGES)
def test_down_after_ctrl_c_at_each_stage_removes_everything(fake: FakeKvmTacc, run: Any, stage: str) -> None:
    def crash(done: str) -> None:
        if done == stage:
            raise KeyboardInterrupt

    assert run("up", stage_hook=crash).code == ch.EXIT_INTERRUPTED
    r = run("down")
    assert r.code == 0, r.err
    assert fake.leases == {} and fake.servers == {} and fake.fips == {}
    assert not run.inventory.exists()


# A fresh `up` makes 22 writes: 1 lease, 9 groups + 9 rules, 1 server, 1 port update, 1 floating IP.
@pytest.mark.parametrize("lost", range(1, 23))
def test_up_after_a_lost_response_completes_without_duplicates(fake: FakeKvmTacc, run: Any, lost: int) -> None:
    """The cloud applied write N but the answer was lost (network drop): the next `up` must adopt it."""
    fake.lose_response_of_write = lost
    r = run("up")
    assert r.code == 1, r.err
    assert "cannot reach KVM@TACC" in r.err
    fake.lose_response_of_write = None
    r = run("up")
    assert r.code == 0, r.err
    assert_complete(fake, run.inventory)
    assert (len(fake.leases), len(fake.servers), len(fake.fips)) == (1, 1, 1)
    assert len(fake.security_groups) == 1 + len(GROUPS)


def test_fresh_up_makes_22_writes(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    assert len(writes(fake)) == 22  # keeps the parametrisation above honest


def test_lease_error_is_a_failure_with_next_step(fake: FakeKvmTacc, run: Any) -> None:
    fake.lease_outcome = "ERROR"
    r = run("up")
    assert r.code == 7
    assert "is ERROR" in r.err and "flavor:instance reservation error" in r.err
    assert "lease.py down" in r.err
    assert r.out["error"]["kind"] == "resource-error"
    assert fake.servers == {}
    # a re-run does not create a second lease next to the broken one
    assert run("up").code == 7
    assert len(fake.leases) == 1
    assert run("down").code == 0 and fake.leases == {}


def test_lease_stuck_pending_times_out_and_is_kept(fake: FakeKvmTacc, run: Any) -> None:
    fake.lease_outcome = "PENDING"
    r = run("up", "--lease-timeout", "30")
    assert r.code == 5
    assert "still PENDING after 30s (timeout 30s)" in r.err
    assert "waiting for lease lab-4-data-platform: PENDING (15s elapsed, timeout 30s)" in r.err
    assert len(fake.live_leases()) == 1 and fake.servers == {}
    fake.lease_outcome = "ACTIVE"
    r = run("up")
    assert r.code == 0, r.err
    assert len(fake.leases) == 1
    assert_complete(fake, run.inventory)


def test_capacity_refusal_surfaces_blazar_text(fake: FakeKvmTacc, run: Any) -> None:
    fake.lease_create_error = (500, "Not enough hosts available")
    r = run("up")
    assert r.code == 4
    assert "Blazar: Not enough hosts available" in r.err and "Flavor Calendar" in r.err
    assert fake.leases == {}


def test_restricted_credential_hint_on_internal_server_error(fake: FakeKvmTacc, run: Any) -> None:
    fake.lease_create_error = (500, "Internal Server Error")
    r = run("up")
    assert r.code == 4 and "Unrestricted" in r.err


def test_server_error_reports_fault(fake: FakeKvmTacc, run: Any) -> None:
    fake.server_outcome = "ERROR"
    r = run("up")
    assert r.code == 7
    assert "is ERROR: No valid host was found. There are not enough hosts available. (code 500)" in r.err
    assert fake.fips == {}
    # adopting the failed server again, not creating another one
    assert run("up").code == 7
    assert len(fake.servers) == 1
    assert run("down").code == 0
    assert fake.servers == {} and fake.leases == {}


def test_instance_quota_refusal_has_the_quota_code(fake: FakeKvmTacc, run: Any) -> None:
    fake.server_create_error = (403, "Quota exceeded for instances: Requested 1, but already used 10 of 10")
    r = run("up")
    assert r.code == 10 and r.out["error"]["kind"] == "quota"
    assert "Quota exceeded for instances" in r.err and "credential" not in r.out["error"]["message"]
    fake.server_create_error = None
    assert run("up").code == 0
    assert_complete(fake, run.inventory)


def test_two_live_leases_with_the_name_are_refused(fake: FakeKvmTacc, run: Any) -> None:
    a = fake.add_lease("lab-4-data-platform")
    b = fake.add_lease("lab-4-data-platform", status="PENDING")
    r = run("up")
    assert r.code == 6
    assert "2 live leases are named 'lab-4-data-platform'" in r.err
    assert a["id"] in r.err and b["id"] in r.err and "--lease-id" in r.err
    assert writes(fake) == []
    # naming one of them resolves the ambiguity
    r = run("up", "--lease-id", a["id"])
    assert r.code == 0, r.err
    assert my_servers(fake)[0]["_flavor_id"] == a["reservations"][0]["id"]


def test_terminated_and_teammates_leases_with_the_name_are_ignored(fake: FakeKvmTacc, run: Any) -> None:
    old = fake.add_lease("lab-4-data-platform", status="TERMINATED")
    theirs = fake.add_lease("lab-4-data-platform", user_id=TEAMMATE_ID)
    r = run("up")
    assert r.code == 0, r.err
    assert "ignoring 1 lease(s) named 'lab-4-data-platform' owned by other users" in r.err
    new = [le for le in fake.leases.values() if le["id"] not in (old["id"], theirs["id"])]
    assert len(new) == 1
    assert my_servers(fake)[0]["_flavor_id"] == new[0]["reservations"][0]["id"]


def test_teammates_free_floating_ip_is_not_taken(fake: FakeKvmTacc, run: Any) -> None:
    free = fake.add_floating_ip(description="")
    other = fake.add_floating_ip(description="lab-4-data-platform-xy999 (provision/lease.py)")
    r = run("up")
    assert r.code == 0, r.err
    assert r.out["floating_ip"] not in (free["floating_ip_address"], other["floating_ip_address"])
    assert free["port_id"] is None and other["port_id"] is None
    assert run("down").code == 0
    assert set(fake.fips) == {free["id"], other["id"]}


def test_orphaned_own_floating_ip_is_reused_then_released(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    (fip,) = fake.fips.values()
    # someone deletes the VM by hand: Neutron keeps the IP, unassociated
    fake.vanish_server(my_servers(fake)[0]["id"])
    assert fip["port_id"] is None
    r = run("up")
    assert r.code == 0, r.err
    assert r.out["floating_ip"] == fip["floating_ip_address"]
    assert len(fake.fips) == 1 and fip["port_id"] is not None
    fake.vanish_server(my_servers(fake)[0]["id"])
    assert run("down").code == 0
    assert fake.fips == {}


# ------------------------------------------------------------------------------------------ auth & config
def test_expired_credential(fake: FakeKvmTacc, run: Any) -> None:
    fake.expired_credential = True
    r = run("up")
    assert r.code == 3
    assert "rejected the application credential" in r.err and "expired" in r.err
    assert "Unrestricted" in r.err
    assert r.out["error"] == {"kind": "auth", "exit_code": 3, "message": r.err.strip().splitlines()[-1][7:]}
    assert APP_CRED_SECRET not in r.err + json.dumps(r.out)
    for cmd in ("status", "down", "extend"):
        assert run(cmd).code == 3


def test_missing_credential_is_a_config_error(fake: FakeKvmTacc, run: Any) -> None:
    r = run("up", environ={"GG_NETID": "abc123"})
    assert r.code == 2 and "no credential" in r.err


def test_wrong_region_is_a_config_error(fake: FakeKvmTacc, run: Any, env: dict[str, str]) -> None:
    r = run("up", environ={**env, "OS_REGION_NAME": "CHI@UC"})
    assert r.code == 2 and "KVM@TACC" in r.err
    r = run("up", environ={**env, "OS_AUTH_URL": "https://chi.uc.chameleoncloud.org:5000/v3"})
    assert r.code == 2 and "per site" in r.err
    fake.catalog_region = "CHI@TACC"
    r = run("up", environ=env)
    assert r.code == 2 and "regions offered: CHI@TACC" in r.err


def test_clouds_yaml_entry(fake: FakeKvmTacc, run: Any, tmp_path: Path) -> None:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    "kvm": {
                        "auth_type": "v3applicationcredential",
                        "auth": {
                            "auth_url": "https://kvm.tacc.chameleoncloud.org:5000",
                            "application_credential_id": "appcred-0123",
                            "application_credential_secret": APP_CRED_SECRET,
                        },
                        "region_name": "KVM@TACC",
                        "interface": "public",
                        "identity_api_version": 3,
                    }
                }
            }
        )
    )
    environ = {"OS_CLIENT_CONFIG_FILE": str(clouds)}
    r = run("up", "--os-cloud", "kvm", environ=environ)
    assert r.code == 0, r.err
    assert "clouds.yaml entry 'kvm'" in r.err
    # user id defaults to the Keystone user name (abc123@nyu.edu -> abc123)
    assert r.out["server"]["name"] == SERVER
    assert run("status", "--os-cloud", "nope", environ=environ).code == 2


def test_missing_resources_fail_fast_by_name(fake: FakeKvmTacc, run: Any) -> None:
    r = run("up", "--key-name", "nokey")
    assert r.code == 2 and "key pair 'nokey' not found" in r.err
    fake.images.clear()
    r = run("up")
    assert r.code == 2 and "image 'CC-Ubuntu24.04' not found" in r.err
    assert writes(fake) == []


def test_public_key_is_imported_when_key_pair_missing(fake: FakeKvmTacc, run: Any, tmp_path: Path) -> None:
    pub = tmp_path / "id.pub"
    pub.write_text("ssh-ed25519 AAAAC3 me@laptop\n")
    r = run("up", "--key-name", "newkey", "--public-key", str(pub))
    assert r.code == 0, r.err
    assert fake.keypairs["newkey"]["public_key"] == "ssh-ed25519 AAAAC3 me@laptop"


# ------------------------------------------------------------------------------------------ groups
def test_existing_groups_are_reused_and_missing_rules_repaired(fake: FakeKvmTacc, run: Any) -> None:
    fake.security_group_quota = 20  # 5 groups exist already: this project's quota was raised
    bare = fake.add_security_group("allow-8000")  # made on the dashboard, rule forgotten
    good = fake.add_security_group("allow-ssh", 22)
    fake.add_security_group("allow-8080", 8080)
    fake.add_security_group("allow-8080", 8080)  # a teammate made one too
    r = run("up")
    assert r.code == 0, r.err
    assert len(fake.groups_named("allow-8000")) == 1
    assert [r["port_range_min"] for r in fake.rules_of(bare) if r["direction"] == "ingress"] == [8000]
    assert [r["port_range_min"] for r in fake.rules_of(good)] == [22]
    assert "2 groups are named allow-8080" in r.err
    assert r.out["security_groups"]["allow-8000"] == bare


def test_cidr_limits_new_rules(fake: FakeKvmTacc, run: Any) -> None:
    fake.add_security_group("allow-ssh", 22)
    r = run("up", "--cidr", "192.0.2.0/24")
    assert r.code == 0, r.err
    (g,) = fake.groups_named("allow-9001")
    assert [x["remote_ip_prefix"] for x in fake.rules_of(g["id"]) if x["direction"] == "ingress"] == ["192.0.2.0/24"]
    assert "allow-ssh already allows tcp/22 from anywhere" in r.err


def test_groups_removed_only_with_flag_and_only_when_unused(fake: FakeKvmTacc, run: Any) -> None:
    dashboard = fake.add_security_group("allow-3000", 3000)  # not ours: never deleted
    assert run("up").code == 0
    assert run("down").code == 0
    assert len(fake.security_groups) == 1 + len(GROUPS)
    assert run("up").code == 0
    # a teammate's VM uses allow-8000
    (g8000,) = fake.groups_named("allow-8000")
    fake.ports["port-teammate"] = {
        "id": "port-teammate",
        "network_id": SHARED_NET_ID,
        "device_id": "srv-teammate",
        "security_groups": [g8000["id"], DEFAULT_SG_ID],
        "fixed_ips": [{"ip_address": "10.56.9.9"}],
        "project_id": PROJECT_ID,
    }
    r = run("down", "--delete-groups")
    assert r.code == 0, r.err
    remaining = {g["name"] for g in fake.security_groups.values()}
    assert remaining == {"default", "allow-8000", "allow-3000"}
    assert dashboard in fake.security_groups
    assert "kept security group allow-8000" in r.err and "still used by a port" in r.err


# ------------------------------------------------------------------------------------------ down
def test_down_twice(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    r = run("down")
    assert r.code == 0, r.err
    assert r.out["changed"] is True
    assert fake.servers == {} and fake.fips == {} and fake.leases == {}
    assert not run.inventory.exists()
    r = run("down", as_json=False)
    assert r.code == 0, r.err
    assert r.out["text"].startswith("Nothing to do: nothing left to delete.")
    reset_history(fake)
    assert run("down").code == 0
    assert writes(fake) == []


def test_down_after_lease_ended(fake: FakeKvmTacc, run: Any) -> None:
    """Blazar already deleted the lease and its server; the floating IP is left over."""
    assert run("up").code == 0
    (lease,) = fake.live_leases()
    fake.end_lease(lease["id"])
    r = run("down")
    assert r.code == 0, r.err
    assert fake.fips == {} and not run.inventory.exists()


# ------------------------------------------------------------------------------------------ status & extend
def test_status_is_read_only(fake: FakeKvmTacc, run: Any) -> None:
    r = run("status")
    assert r.code == ch.EXIT_NOT_READY
    assert r.out["ready"] is False and r.out["lease"] is None and r.out["server"] is None
    assert writes(fake) == []
    assert run("up").code == 0
    reset_history(fake)
    r = run("status")
    assert r.code == 0, r.err
    assert writes(fake) == []
    assert r.out["ready"] is True
    assert r.out["lease"]["status"] == "ACTIVE"
    assert 3 * 3600 < r.out["lease"]["seconds_left"] <= 4 * 3600
    assert r.out["server"]["status"] == "ACTIVE"
    assert r.out["inventory"]["state"] == "current"
    assert all(g == {"exists": True, "attached": True} for g in r.out["security_groups"].values())
    human = run("status", as_json=False)
    assert "left; the server is deleted when the lease ends" in human.out["text"]
    run.inventory.write_text("# edited\n")
    r = run("status")
    assert r.code == ch.EXIT_NOT_READY and r.out["inventory"]["state"] == "stale"
    assert writes(fake) == []


def test_extend_when_allowed(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    (lease,) = fake.live_leases()
    old_end = dt.datetime.strptime(lease["end_date"], "%Y-%m-%dT%H:%M:%S.%f")
    fake.extend_allowed = True
    r = run("extend", "--hours", "2")
    assert r.code == 0, r.err
    new_end = dt.datetime.strptime(lease["end_date"], "%Y-%m-%dT%H:%M:%S.%f")
    assert new_end - old_end == dt.timedelta(hours=2)


def test_extend_without_lease(fake: FakeKvmTacc, run: Any) -> None:
    r = run("extend")
    assert r.code == 2 and "run `up` first" in r.err


# ------------------------------------------------------------------------------------------ inventory
def test_inventory_is_accepted_by_ansible_inventory(fake: FakeKvmTacc, run: Any) -> None:
    r = run("up")
    assert r.code == 0, r.err
    exe = Path(sys.executable).with_name("ansible-inventory")
    binary = str(exe) if exe.exists() else shutil.which("ansible-inventory")
    if binary is None:
        pytest.skip("ansible-core is not installed (pip install -r provision/requirements-dev.txt)")
    proc = subprocess.run(
        [binary, "-i", str(run.inventory), "--list"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    ip = r.out["floating_ip"]
    assert set(listing["gourmetgram"]["children"]) == set(ch.INVENTORY_GROUPS)
    for group in ch.INVENTORY_GROUPS:
        assert listing[group]["hosts"] == [SERVER], group
    hostvars = listing["_meta"]["hostvars"][SERVER]
    assert hostvars["ansible_host"] == ip
    assert hostvars["gourmetgram_public_address"] == ip
    assert hostvars["gourmetgram_private_address"] == r.out["private_address"] != ip
    assert hostvars["ansible_user"] == "cc"
    assert hostvars["ansible_ssh_private_key_file"] == str(run.key)
    assert hostvars["ansible_python_interpreter"] == "/usr/bin/python3"
    assert "[WARNING]" not in proc.stderr


def test_wait_ssh_polls_port_22(fake: FakeKvmTacc, run: Any) -> None:
    answers = iter([False, False, True])
    probes: list[tuple[str, int]] = []

    def probe(host: str, port: int, timeout: float) -> bool:
        probes.append((host, port))
        return next(answers)

    r = run("up", "--wait-ssh", tcp_probe=probe)
    assert r.code == 0, r.err
    assert probes == [(r.out["floating_ip"], 22)] * 3
    assert "waiting for SSH on" in r.err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from provision import lease

    assert lease.main(["--help"]) == 0
    out = capsys.readouterr().out
    for code in ("0 ", "2 ", "3 ", "4 ", "5 ", "6 ", "7 ", "130"):
        assert f"\n  {code}" in out
    assert lease.main(["bogus"]) == 2


def test_down_refuses_ambiguity_before_deleting_anything(fake: FakeKvmTacc, run: Any) -> None:
    assert run("up").code == 0
    fake.add_lease("lab-4-data-platform")
    reset_history(fake)
    r = run("down")
    assert r.code == 6 and "--lease-id" in r.err
    assert writes(fake) == []
    assert len(my_servers(fake)) == 1


def test_script_runs_from_a_checkout() -> None:
    script = Path(__file__).resolve().parents[2] / "provision" / "lease.py"
    proc = subprocess.run(
        [sys.executable, str(script), "up", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "--key-name" in proc.stdout and "exit codes:" in proc.stdout
