"""The Chameleon path on the twin (issue 11): what the README's "Running on Chameleon" section
promises, checked on the host that tests/chameleon/session.py deployed as a student does it
(lease.py up, then platform.sh up --inventory by an unprivileged controller user).

- lease.py up wrote the inventory it promises (floating IP, user cc, the private address);
- the floating IP is on no interface of the host; the services bind the private address;
- every unit active; the API, Airflow and every UI answer on the floating IP;
- Kafka and MinIO came by the download path a real host takes (the roles' get_url with the
  checksum, then the unpack), from the twin's airgap mirror at the official URL paths.

tests/run.sh deploy runs the lab guide, the UI tests and the site checks on the same host
afterwards, and tests/chameleon/test_twin_down.py ends it.

    sudo GG_DEPLOY_TWIN=1 $GG_CACHE/venv/bin/pytest -s tests/chameleon/test_twin.py tests/chameleon/test_twin_down.py
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import yaml

from tests.chameleon.session import INVENTORY, TwinHost

pytestmark = [pytest.mark.e2e, pytest.mark.testbed, pytest.mark.timeout(3600)]

# The URLs the bring-up summary prints (the API has no page at /, its docs are at /docs).
UI_URLS = {
    "FastAPI docs": ":8000/docs",
    "Airflow": ":8080/",
    "Adminer": ":5050/",
    "Kafka console": ":8090/",
    "Redis browser": ":8081/",
    "MinIO console": ":9001/",
    "Iceberg browser": ":3000/",
    "Jupyter": ":8888/",
}


# --- 1. lease.py up --------------------------------------------------------------------------------
def test_up_writes_the_inventory_lease_py_promises(chameleon_twin: TwinHost) -> None:
    host = chameleon_twin
    [lease] = host.cloud.live_leases()
    assert lease["status"] == "ACTIVE"
    inventory = yaml.safe_load((host.student.repo / INVENTORY).read_text())
    [hostvars] = inventory["all"]["hosts"].values()
    assert hostvars["ansible_host"] == host.fip and hostvars["ansible_user"] == "cc", hostvars
    assert hostvars["gourmetgram_private_address"] == host.private, hostvars
    assert hostvars["ansible_ssh_private_key_file"] == str(host.student.key), hostvars


def test_floating_ip_is_on_no_interface_of_the_host(chameleon_twin: TwinHost) -> None:
    host = chameleon_twin
    addrs = host.ssh("ip -o -4 addr show")
    assert host.fip not in addrs and f" {host.private}/" in addrs, addrs
    assert host.address == host.fip, "the summary prints the floating IP a student opens"


# --- 2./3. the deploy ------------------------------------------------------------------------------
def test_every_unit_active_and_the_services_bind_the_private_address(chameleon_twin: TwinHost) -> None:
    host = chameleon_twin
    units = host.ssh("systemctl list-units --no-legend --plain --all 'gourmetgram-*' | awk '{print $1, $3}'")
    states = dict(line.split() for line in units.splitlines())
    assert states and all(s == "active" for s in states.values()), states
    listening = host.ssh("ss -Htln | awk '{print $4}'").split()
    for port in (8000, 8080):
        assert f"{host.private}:{port}" in listening or f"0.0.0.0:{port}" in listening, (port, listening)


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_api_airflow_and_every_ui_answer_on_the_floating_ip(chameleon_twin: TwinHost) -> None:
    fip = chameleon_twin.fip
    code, body = _get(f"http://{fip}:8000/health")
    assert code == 200 and json.loads(body)["status"] == "healthy", body
    code, body = _get(f"http://{fip}:8080/api/v2/monitor/health")
    assert code == 200 and json.loads(body)["scheduler"]["status"] == "healthy", body
    answers = {name: _get(f"http://{fip}{path}")[0] for name, path in UI_URLS.items()}
    # every UI is up behind its login: a page, a redirect to the login, or 401
    assert all(code in (200, 302, 401) for code in answers.values()), answers


def test_kafka_and_minio_downloaded_and_verified_from_the_mirror(chameleon_twin: TwinHost) -> None:
    host, mirror = chameleon_twin, chameleon_twin.mirror
    assert mirror is not None
    # each artifact fetched once, at the official URL's path (tests/chameleon/mirror.py)
    assert sorted(mirror.requests) == sorted(mirror.paths.values()), mirror.requests
    assert mirror.paths["kafka"].startswith("/dist/kafka/"), mirror.paths
    assert mirror.paths["minio"].startswith("/minio/minio/releases/download/"), mirror.paths
    sums = host.ssh("sha512sum /opt/kafka/dist/*.tgz; sha256sum /usr/local/bin/minio").split()
    assert f"sha512:{sums[0]}" == mirror.checksums["kafka"] and f"sha256:{sums[2]}" == mirror.checksums["minio"], sums
    assert host.ssh("ls /opt/kafka/current/libs | grep -c '^kafka_'").strip() != "0"
